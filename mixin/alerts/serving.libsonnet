// Serving health from prediction logs: errors, latency, traffic. Error and latency alerts
// apply to every version that receives traffic, not only the active one: a canary or shadow
// version that fails is failing in production too. A version needs minPredictionsPerHour
// predictions in the last hour before its error ratio counts.
local lib = import '../lib.libsonnet';

{
  local c = $._config,
  local v = lib.vars(c),
  local pct(x) = '%d%%' % std.round(100 * x),
  local shortRatio(window) =
    ('{{ with printf `model_version:%(p)s_prediction_errors:ratio_rate' + window + '{instance=%%q,model=%%q,version=%%q}` $labels.instance $labels.model $labels.version | query }}{{ . | first | value | humanizePercentage }}{{ end }}') % v,

  prometheusAlerts+:: {
    groups+: [
      lib.group('model-serving', [
        // Burn-rate style: both the long and the short window above the limit. The long
        // window proves the errors are sustained, the short one that they are still happening.
        lib.alert(
          c,
          'ModelErrorRateCritical',
          |||
            (
              model_version:%(p)s_prediction_errors:ratio_rate1h > %(errorRatioCritical)s
              and %(on)s (model_version:%(p)s_prediction_errors:ratio_rate5m > %(errorRatioCritical)s)
            )
            and %(on)s (increase(%(p)s_predictions_total[1h]) >= %(minPredictionsPerHour)s)
          ||| % v,
          'critical',
          'ml-serving',
          'error_rate',
          'More than %s of predictions fail' % pct(c.thresholds.errorRatioCritical),
          '{{ $value | humanizePercentage }}',
          'Model {{ $labels.model }} version {{ $labels.version }}: {{ $value | humanizePercentage }} of the predictions of the last hour failed (limit %s), and ' % pct(c.thresholds.errorRatioCritical) +
          shortRatio('5m') + ' of the last 5 minutes.',
        ),
        lib.alert(
          c,
          'ModelErrorRateHigh',
          |||
            (
              model_version:%(p)s_prediction_errors:ratio_rate6h > %(errorRatioWarning)s
              and %(on)s (model_version:%(p)s_prediction_errors:ratio_rate30m > %(errorRatioWarning)s)
            )
            and %(on)s (increase(%(p)s_predictions_total[1h]) >= %(minPredictionsPerHour)s)
          ||| % v,
          'warning',
          'ml-serving',
          'error_rate',
          'More than %s of predictions fail' % pct(c.thresholds.errorRatioWarning),
          '{{ $value | humanizePercentage }}',
          'Model {{ $labels.model }} version {{ $labels.version }}: {{ $value | humanizePercentage }} of the predictions of the last 6 hours failed (limit %s), and ' % pct(c.thresholds.errorRatioWarning) +
          shortRatio('30m') + ' of the last 30 minutes.',
        ),
        // Latency more than latencyGrowth x its usual level. "Usual" is the same 5 minutes one
        // day earlier, which follows the daily traffic pattern.
        lib.alert(
          c,
          'ModelLatencyHigh',
          |||
            model_version:%(p)s_prediction_latency_seconds:p95_rate5m
              > %(latencyGrowth)s * (model_version:%(p)s_prediction_latency_seconds:p95_rate5m offset 1d)
            and %(on)s (model_version:%(p)s_predictions:rate5m * 300 >= %(minPredictionsPerHour)s)
          ||| % v,
          'warning',
          'ml-serving',
          'latency',
          'Prediction latency p95 more than doubled since the same time yesterday',
          '{{ $value | humanizeDuration }}',
          ('Model {{ $labels.model }} version {{ $labels.version }}: the 95th percentile of prediction latency over 5 minutes is {{ $value | humanizeDuration }}, more than %(latencyGrowth)s times the ' +
           '{{ with printf `model_version:%(p)s_prediction_latency_seconds:p95_rate5m{instance=%%q,model=%%q,version=%%q} offset 1d` $labels.instance $labels.model $labels.version | query }}{{ . | first | value | humanizeDuration }}{{ end }}' +
           ' of one day earlier.') % v,
        ),
        // The active version's counter exists but has not moved for 15 minutes, although it
        // did during the last day. (A model idle for a whole day stops alerting.)
        lib.alert(
          c,
          'ModelPredictionsStopped',
          |||
            (rate(%(p)s_predictions_total[15m]) == 0)
            and %(on)s (increase(%(p)s_predictions_total[1d]) > 0)
            and %(on)s (%(p)s_model_active == 1)
          ||| % v,
          'warning',
          'ml-serving',
          'traffic',
          'The serving model version stopped logging predictions',
          '{{ $value }}',
          ('Model {{ $labels.model }} version {{ $labels.version }} (active) logged no prediction in the last 15 minutes, after ' +
           '{{ with printf `increase(%(p)s_predictions_total{instance=%%q,model=%%q,version=%%q}[1d])` $labels.instance $labels.model $labels.version | query }}{{ . | first | value | printf "%%.0f" }}{{ end }}' +
           ' in the last day.') % v,
        ),
      ]),
    ],
  },
}
