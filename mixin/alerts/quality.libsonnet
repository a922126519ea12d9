// Evaluation quality of the serving version, from metrics.json, against the model's own
// thresholds (<prefix>_model_quality_threshold{model,metric,severity}: defaults from the
// baseline, overridable in the exporter's config or a model's baseline_metrics.json).
// Only the active version alerts; older versions stay visible on the dashboards. The
// warning also fires while the critical does: Alertmanager inhibits it.
//
// The threshold side is one series per exporter and model (max by instance labels and
// model), joined per exporter: with several exporters of one model (replicas, shards) each
// version is compared with its own exporter's threshold, never "many-to-many".
local lib = import '../lib.libsonnet';

{
  // metric < threshold{metric, severity}; `format` renders a value in the annotations.
  thresholdAlert(c, name, metricName, thresholdMetric, severity, family, summary, what, format, tail='')::
    local v = lib.vars(c) { metric: metricName, threshold: thresholdMetric, severity: severity };
    lib.alert(
      c,
      name,
      |||
        (
          %(p)s_%(metric)s
            < %(onModel)s group_left
          max %(byModel)s (%(p)s_model_quality_threshold{metric="%(threshold)s", severity="%(severity)s"})
        )
        and %(on)s (%(p)s_model_active == 1)
      ||| % v,
      severity,
      'ml-model',
      family,
      summary,
      '{{ $value | %s }}' % format,
      (
        'Model {{ $labels.model }} version {{ $labels.version }} (active) %(what)s ' +
        '{{ $value | %(format)s }}, below its %(severity)s threshold of ' +
        '{{ with printf `%(p)s_model_quality_threshold{instance=%%q,model=%%q,metric="%(threshold)s",severity="%(severity)s"}` $labels.instance $labels.model | query }}' +
        '{{ . | first | value | %(format)s }}{{ else }}(unknown){{ end }}.%(tail)s'
      ) % (v { what: what, format: format, tail: if tail == '' then '' else ' ' + tail }),
    ),

  local t = self.thresholdAlert,
  local pct = 'humanizePercentage',
  local count = 'printf "%.0f"',

  prometheusAlerts+:: {
    groups+: [
      lib.group('model-quality', [
        t($._config, 'ModelAccuracyDegraded', 'model_accuracy', 'accuracy', 'warning', 'accuracy',
          'Model accuracy below warning threshold', 'has accuracy', pct),
        t($._config, 'ModelAccuracyCritical', 'model_accuracy', 'accuracy', 'critical', 'accuracy',
          'Model accuracy critically low', 'has accuracy', pct, 'Immediate action required.'),
        t($._config, 'ModelDatasetSizeDecreased', 'training_samples', 'training_samples', 'warning',
          'training_data', 'Training dataset unusually small', 'has a training-sample count of', count),
      ]),
      lib.group('model-scores', [
        t($._config, 'ModelF1ScoreDegraded', 'model_f1_score', 'f1_score', 'warning', 'f1_score',
          'Model F1 score below warning threshold', 'has F1 score', pct),
        t($._config, 'ModelF1ScoreCritical', 'model_f1_score', 'f1_score', 'critical', 'f1_score',
          'Model F1 score critically low', 'has F1 score', pct, 'Immediate action required.'),
        t($._config, 'ModelPrecisionDegraded', 'model_precision_weighted', 'precision_weighted',
          'warning', 'precision', 'Model weighted precision below warning threshold',
          'has weighted precision', pct),
        t($._config, 'ModelPrecisionCritical', 'model_precision_weighted', 'precision_weighted',
          'critical', 'precision', 'Model weighted precision critically low',
          'has weighted precision', pct, 'Immediate action required.'),
        t($._config, 'ModelRecallDegraded', 'model_recall_weighted', 'recall_weighted',
          'warning', 'recall', 'Model weighted recall below warning threshold',
          'has weighted recall', pct),
        t($._config, 'ModelRecallCritical', 'model_recall_weighted', 'recall_weighted',
          'critical', 'recall', 'Model weighted recall critically low',
          'has weighted recall', pct, 'Immediate action required.'),
      ]),
    ],
  },
}
