// Everything a user may change, the kube-prometheus way:
//   local mixin = (import 'mixin.libsonnet') + { _config+:: { prefix: 'acme_ml' } };
// then mixin.prometheusAlerts, mixin.prometheusRules and mixin.grafanaDashboards.
{
  _config+:: {
    // The exporter's --namespace: every metric is <prefix>_<name>.
    prefix: 'routing_ml',
    // Selects the exporter's scrape targets: the "target gone" alerts and the dashboards'
    // job variable use it. Model rules match the prefix's metrics from any job.
    exporterSelector: 'job="model-health-exporter"',
    // One exporter's series of one model version. Joins carry job and instance, so several
    // exporters of the same model (replicas, shards) are compared each with its own data.
    instanceLabels: ['job', 'instance'],
    runbookURLBase: 'https://github.com/model-health-exporter/model-health-exporter/blob/main/docs/runbooks.md#',

    // The exporter's window horizons (--logs.window-buckets x --logs.window-bucket-seconds,
    // and --logs.window-short-buckets): a fast alert's long-window confirmation scales with
    // their ratio.
    shortWindowSeconds: 300,
    longWindowSeconds: 3600,
    // Samples of the window's kind the rules want before a window statistic counts: a 5%
    // drop of an accuracy near 0.9 is about two standard errors at 200 samples.
    minWindowSamples: 200,

    thresholds: {
      liveAccuracyDropWarning: 0.05,  // relative drop below the evaluation accuracy
      liveAccuracyDropCritical: 0.10,
      estimatedAccuracyDropWarning: 0.05,
      predictionPsi: 0.2,
      predictionPValue: 0.05,
      featureMissingRatio: 0.10,
      featureUnseenCategoryRatio: 0.05,
      healthFair: 70,
      healthPoor: 50,
      modelAgeDays: 30,
      errorRatioCritical: 0.10,
      errorRatioWarning: 0.05,
      minPredictionsPerHour: 20,
      latencyGrowth: 2,
    },

    // `for:` of every alert, by alert name.
    'for': {
      ModelAccuracyDegraded: '10m',
      ModelAccuracyCritical: '5m',
      ModelDatasetSizeDecreased: '10m',
      ModelF1ScoreDegraded: '10m',
      ModelF1ScoreCritical: '5m',
      ModelPrecisionDegraded: '10m',
      ModelPrecisionCritical: '5m',
      ModelRecallDegraded: '10m',
      ModelRecallCritical: '5m',
      ModelLiveAccuracyDropped: '15m',
      ModelLiveAccuracyCritical: '1m',
      ModelEstimatedAccuracyDropped: '15m',
      ModelDataDrift: '2m',
      ModelPredictionDrift: '30m',
      ModelFeatureMissingValues: '15m',
      ModelFeatureUnseenCategories: '15m',
      ModelTrainingDataMissingValues: '10m',
      ModelHealthFair: '15m',
      ModelHealthPoor: '10m',
      ModelRetrainingRecommended: '30m',
      ModelVersionTooOld: '1h',
      ModelErrorRateCritical: '2m',
      ModelErrorRateHigh: '5m',
      ModelLatencyHigh: '15m',
      ModelPredictionsStopped: '5m',
      ModelExporterDown: '5m',
      ModelExporterAbsent: '5m',
      ModelExporterIngestErrors: '15m',
      ModelMetricsFileInvalid: '5m',
    },

    // Grafana
    datasource: 'prometheus',  // the data source type the dashboards' variable lists
    dashboardTags: ['ml', 'model-health'],
    dashboardRefresh: '30s',
  },
}
