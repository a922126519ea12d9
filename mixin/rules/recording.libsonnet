// Recording rules that alerts and dashboards share, named level:metric:operations.
// "model_version" keeps the labels job, instance, model and version (alerts built on them
// still match the active version and are inhibited per exporter job); "model" aggregates
// the versions of one model. Only rules some alert or panel reads are here.
local lib = import '../lib.libsonnet';

{
  local c = $._config,
  local v = lib.vars(c),
  // Error ratio over a window. The error counter exists only for error types seen, so
  // "or ... * 0" gives 0 (not "no data") for a version that logs predictions but no errors.
  local errorRatio(window) = {
    record: 'model_version:%(p)s_prediction_errors:ratio_rate%(w)s' % (v { w: window }),
    expr: |||
      (
        sum without (error_type) (rate(%(p)s_prediction_errors_total[%(w)s]))
        or rate(%(p)s_predictions_total[%(w)s]) * 0
      )
      / rate(%(p)s_predictions_total[%(w)s])
    ||| % (v { w: window }),
  },
  local latency(q, name) = {
    record: 'model_version:%(p)s_prediction_latency_seconds:%(name)s_rate5m' % (v { name: name }),
    expr: |||
      histogram_quantile(%(q)s,
        sum by (%(instance)s, model, version, le) (rate(%(p)s_prediction_latency_seconds_bucket[5m])))
    ||| % (v { q: q }),
  },
  // Relative drop of live (feedback) or estimated accuracy below the evaluation accuracy of
  // the same version: 0.05 = 5% worse. Positive = worse.
  local drop(metric) = {
    record: 'model_version:%(p)s_%(m)s_drop:ratio' % (v { m: metric }),
    expr: |||
      (%(p)s_model_accuracy - %(p)s_%(m)s) / %(p)s_model_accuracy
    ||| % (v { m: metric }),
  },
  local active(metric) = {
    record: 'model:%(p)s_%(m)s:active' % (v { m: metric }),
    expr: '%(p)s_%(m)s and %(on)s (%(p)s_model_active == 1)' % (v { m: metric }),
  },

  prometheusRules+:: {
    groups+: [
      lib.group('model-recording', [
        {
          record: 'model_version:%(p)s_predictions:rate5m' % v,
          expr: 'rate(%(p)s_predictions_total[5m])' % v,
        },
        // Windows pair for burn-rate style alerts: 1h with 5m (critical), 6h with 30m
        // (warning).
        errorRatio('5m'),
        errorRatio('30m'),
        errorRatio('1h'),
        errorRatio('6h'),
        latency('0.50', 'p50'),
        latency('0.95', 'p95'),
        latency('0.99', 'p99'),
        drop('live_accuracy'),
        drop('short_live_accuracy'),
        drop('estimated_accuracy'),
        // The serving version of each model (overview dashboard).
        active('model_accuracy'),
        active('model_health_score'),
        active('data_drift_share'),
      ]),
    ],
  },
}
