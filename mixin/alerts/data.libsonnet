// Input data of the serving version: drift against the reference, data quality of the
// logged features, and the training dataset from metrics.json.
local lib = import '../lib.libsonnet';

{
  local c = $._config,
  local v = lib.vars(c),
  local pct(x) = '%d%%' % std.round(100 * x),

  prometheusAlerts+:: {
    groups+: [
      lib.group('model-data', [
        // The exporter's own detection: --drift.method with its threshold and multiple-testing
        // correction, as the user configured it. The short horizon sees a shift within
        // minutes; it is confirmed by the long window's flag, or by the short horizon
        // flagging for a whole horizon's length (two horizons with no data in common), so
        // a chance flag of a few minutes' data (about 1 window in 200 under the default
        // p-value test) notifies nobody, and a shift too small a share of the long window
        // yet is not held up by it. A model with too little traffic for the short horizon
        // (or an exporter with --logs.window-short-buckets=0) warns from the window alone.
        lib.alert(
          c,
          'ModelDataDrift',
          |||
            (
              (
                %(p)s_short_data_drift_share > 0
                and %(on)s (
                  %(p)s_data_drift_share > 0
                  or (
                    min_over_time(%(p)s_short_data_drift_share[%(shortRange)s]) > 0
                    and %(p)s_short_data_drift_share offset %(shortRange)s > 0
                  )
                )
                and %(on)s (%(p)s_short_window_samples{kind="features"} >= %(minSamples)s)
              )
              or
              (
                %(p)s_data_drift_share > 0
                and %(on)s (%(p)s_window_samples{kind="features"} >= %(minSamples)s)
                unless %(on)s (%(p)s_short_window_samples{kind="features"} >= %(minSamples)s)
              )
            )
            and %(on)s (%(p)s_model_active == 1)
          ||| % (v { shortRange: '%ds' % c.shortWindowSeconds }),
          'warning',
          'ml-data',
          'data_drift',
          'Input features drifted from the reference data',
          '{{ $value | humanizePercentage }}',
          ('Model {{ $labels.model }} version {{ $labels.version }} (active): {{ $value | humanizePercentage }} of the features drifted from the reference by the exporter drift test (over the last minutes, confirmed; over the window where traffic is too low for minutes); drifted: ' +
           '{{ range $i, $f := printf `max by (feature) (%(p)s_short_feature_drift_detected{instance=%%q,model=%%q,version=%%q} == 1 or %(p)s_feature_drift_detected{instance=%%q,model=%%q,version=%%q} == 1)` $labels.instance $labels.model $labels.version $labels.instance $labels.model $labels.version | query | sortByLabel "feature" }}{{ if $i }}, {{ end }}{{ $f.Labels.feature }}{{ end }}.') % v,
        ),
        // Both an effect size (PSI above 0.2 is drift) and significance (p < 0.05): with
        // large windows a p-value alone flags differences too small to matter.
        lib.alert(
          c,
          'ModelPredictionDrift',
          |||
            (
              %(p)s_prediction_psi > %(predictionPsi)s
              and %(on)s (%(p)s_prediction_drift_p_value < %(predictionPValue)s)
            )
            and %(on)s (%(p)s_window_samples{kind="predictions"} >= %(minSamples)s)
            and %(on)s (%(p)s_model_active == 1)
          ||| % v,
          'warning',
          'ml-model',
          'prediction_drift',
          'Distribution of predictions drifted from the reference',
          '{{ printf "%.2f" $value }}',
          ('Model {{ $labels.model }} version {{ $labels.version }} (active): the predicted classes or outputs have a PSI of {{ printf "%%.2f" $value }} against the reference (above %(predictionPsi)s), p-value ' +
           '{{ with printf `%(p)s_prediction_drift_p_value{instance=%%q,model=%%q,version=%%q}` $labels.instance $labels.model $labels.version | query }}{{ . | first | value | printf "%%.2g" }}{{ end }}.') % v,
        ),
        lib.alert(
          c,
          'ModelFeatureMissingValues',
          |||
            %(p)s_feature_missing_ratio > %(featureMissingRatio)s
            and %(on)s (%(p)s_window_samples{kind="features"} >= %(minSamples)s)
            and %(on)s (%(p)s_model_active == 1)
          ||| % v,
          'warning',
          'ml-data',
          'data_quality',
          'A feature is missing in more than %s of predictions' % pct(c.thresholds.featureMissingRatio),
          '{{ $value | humanizePercentage }}',
          'Model {{ $labels.model }} version {{ $labels.version }} (active): feature {{ $labels.feature }} is missing in {{ $value | humanizePercentage }} of the predictions in the window (limit %s).' % pct(c.thresholds.featureMissingRatio),
        ),
        lib.alert(
          c,
          'ModelFeatureUnseenCategories',
          |||
            %(p)s_feature_unseen_category_ratio > %(featureUnseenCategoryRatio)s
            and %(on)s (%(p)s_window_samples{kind="features"} >= %(minSamples)s)
            and %(on)s (%(p)s_model_active == 1)
          ||| % v,
          'warning',
          'ml-data',
          'data_quality',
          'A categorical feature has values never seen in the reference data',
          '{{ $value | humanizePercentage }}',
          'Model {{ $labels.model }} version {{ $labels.version }} (active): feature {{ $labels.feature }} has a category unknown to the reference data in {{ $value | humanizePercentage }} of the predictions in the window (limit %s).' % pct(c.thresholds.featureUnseenCategoryRatio),
        ),
        // metrics.json's dataset_stats.missing_rates: the worst training column against the
        // model's max_missing_rate (default 10%).
        lib.alert(
          c,
          'ModelTrainingDataMissingValues',
          |||
            (
              max %(by)s (%(p)s_dataset_missing_ratio)
                > %(onModel)s group_left
              max %(byModel)s (%(p)s_model_quality_threshold{metric="dataset_missing_ratio", severity="warning"})
            )
            and %(on)s (%(p)s_model_active == 1)
          ||| % v,
          'warning',
          'ml-data',
          'training_data',
          'Training data had too many missing values',
          '{{ $value | humanizePercentage }}',
          ('Model {{ $labels.model }} version {{ $labels.version }} (active) was trained on data whose worst column was {{ $value | humanizePercentage }} missing, above the limit of ' +
           '{{ with printf `%(p)s_model_quality_threshold{instance=%%q,model=%%q,metric="dataset_missing_ratio",severity="warning"}` $labels.instance $labels.model | query }}{{ . | first | value | humanizePercentage }}{{ else }}(unknown){{ end }}.') % v,
        ),
      ]),
    ],
  },
}
