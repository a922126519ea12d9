// The exporter itself and the files it reads. While ModelExporterDown or ModelExporterAbsent
// fires, Alertmanager inhibits every other alert of the same job (their data is stale).
local lib = import '../lib.libsonnet';

{
  local c = $._config,
  local v = lib.vars(c),

  prometheusAlerts+:: {
    groups+: [
      lib.group('model-inputs', [
        lib.alert(
          c,
          'ModelExporterDown',
          'up{%(sel)s} == 0' % v,
          'critical',
          'exporter',
          'exporter',
          'model-health-exporter cannot be scraped',
          '{{ $value }}',
          'Prometheus has failed to scrape the model-health-exporter at {{ $labels.instance }} (job {{ $labels.job }}) for %s: no model is being monitored.' % c['for'].ModelExporterDown,
        ),
        // No target of the job at all: the exporter left service discovery (a deleted
        // Deployment, a renamed job), which `up == 0` cannot see.
        lib.alert(
          c,
          'ModelExporterAbsent',
          'absent(up{%(sel)s})' % v,
          'critical',
          'exporter',
          'exporter',
          'No model-health-exporter target is scraped',
          '{{ $value }}',
          'Prometheus has had no scrape target matching {%(sel)s} for %(for)s ({{ $labels.job }}): no model is being monitored.' % (v { 'for': c['for'].ModelExporterAbsent }),
        ),
        // One bad line or file makes the 10m increase positive for 10 minutes only, less than
        // the 15m of `for`: the alert needs errors that keep coming.
        lib.alert(
          c,
          'ModelExporterIngestErrors',
          |||
            sum by (%(instance)s, source, reason) (increase(%(p)s_exporter_errors_total[10m])) > 0
          ||| % v,
          'warning',
          'exporter',
          'exporter',
          'model-health-exporter keeps failing to read its inputs',
          '{{ printf "%.0f" $value }}',
          'The model-health-exporter at {{ $labels.instance }} keeps meeting bad input: {{ printf "%.0f" $value }} errors of source {{ $labels.source }}, reason {{ $labels.reason }}, in the last 10 minutes, for 15 minutes now.',
        ),
        // Any version, not only the active one: a broken file of the next version is worth
        // fixing before it is activated. The version keeps its last valid values meanwhile.
        lib.alert(
          c,
          'ModelMetricsFileInvalid',
          '%(p)s_model_metrics_file_valid == 0' % v,
          'warning',
          'ml-model',
          'metrics_file',
          'metrics.json of a model version is invalid',
          '{{ $value }}',
          'The metrics.json of model {{ $labels.model }} version {{ $labels.version }} has been invalid for 5 minutes; its series show the last valid values (if any).',
        ),
      ]),
    ],
  },
}
