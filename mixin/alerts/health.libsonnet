// The exporter's summary of a version: health score, retraining recommendation and age.
// Active version only.
local lib = import '../lib.libsonnet';

{
  local c = $._config,
  local v = lib.vars(c),
  local weakest =
    ('Weakest check: {{ with printf `bottomk(1, %(p)s_model_health_check_score{instance=%%q,model=%%q,version=%%q} and on(model, version, check) %(p)s_model_health_check_weight > 0)` $labels.instance $labels.model $labels.version | query }}{{ with . | first }}{{ .Labels.check }} ({{ .Value | printf "%%.0f" }}){{ end }}{{ else }}unknown{{ end }}.') % v,

  prometheusAlerts+:: {
    groups+: [
      lib.group('model-health', [
        // Levels: excellent >= 90, good >= 70, fair >= 50, poor < 50. ModelHealthFair also
        // fires while the score is poor; the critical ModelHealthPoor inhibits it.
        lib.alert(
          c,
          'ModelHealthFair',
          |||
            %(p)s_model_health_score < %(healthFair)s
            and %(on)s (%(p)s_model_active == 1)
          ||| % v,
          'warning',
          'ml-model',
          'health',
          'Model health score below %s (fair)' % c.thresholds.healthFair,
          '{{ printf "%.0f" $value }}',
          'Model {{ $labels.model }} version {{ $labels.version }} (active) has a health score of {{ printf "%%.0f" $value }}/100, below %s. ' % c.thresholds.healthFair + weakest,
        ),
        lib.alert(
          c,
          'ModelHealthPoor',
          |||
            %(p)s_model_health_score < %(healthPoor)s
            and %(on)s (%(p)s_model_active == 1)
          ||| % v,
          'critical',
          'ml-model',
          'health',
          'Model health score below %s (poor)' % c.thresholds.healthPoor,
          '{{ printf "%.0f" $value }}',
          'Model {{ $labels.model }} version {{ $labels.version }} (active) has a health score of {{ printf "%%.0f" $value }}/100, below %s. ' % c.thresholds.healthPoor + weakest + ' Immediate attention required.',
        ),
        // Info, not for people: the label action="retrain" routes it to the retraining
        // webhook. The exporter recommends retraining when a trigger fires (performance
        // drop, drift, age, error rate) and there is enough new data: new_data is the gate,
        // so the description lists the triggers only.
        lib.alert(
          c,
          'ModelRetrainingRecommended',
          |||
            %(p)s_model_retrain_recommended == 1
            and %(on)s (%(p)s_model_active == 1)
          ||| % v,
          'info',
          'ml-model',
          'retraining',
          'Retraining recommended',
          '{{ $value }}',
          ('Model {{ $labels.model }} version {{ $labels.version }} (active) should be retrained, with enough new data to learn from; triggers: ' +
           '{{ range $i, $r := printf `%(p)s_model_retrain_reason{instance=%%q,model=%%q,version=%%q,reason!="new_data"} == 1` $labels.instance $labels.model $labels.version | query | sortByLabel "reason" }}{{ if $i }}, {{ end }}{{ $r.Labels.reason }}{{ end }}.') % v,
          { action: 'retrain' },
        ),
        // A model older than modelAgeDays (generated_at in metrics.json) is due.
        lib.alert(
          c,
          'ModelVersionTooOld',
          |||
            (time() - %(p)s_model_generated_timestamp_seconds) / 86400 > %(modelAgeDays)s
            and %(on)s (%(p)s_model_active == 1)
          ||| % v,
          'info',
          'ml-model',
          'freshness',
          'Serving model version older than %s days' % c.thresholds.modelAgeDays,
          '{{ printf "%.0f" $value }} days',
          'Model {{ $labels.model }} version {{ $labels.version }} (active) was generated {{ printf "%%.0f" $value }} days ago (limit %s days).' % c.thresholds.modelAgeDays,
        ),
      ]),
    ],
  },
}
