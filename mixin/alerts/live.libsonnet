// Production quality of the serving version, from prediction logs.
//
// Live accuracy needs feedback (ground truth joined to predictions); the estimate needs only
// the logged confidences. Both are compared with the version's evaluation accuracy from
// metrics.json (recording rules in model-recording). A drop of more than 5% is worth a look
// (warning), more than 10% pages (critical).
//
// The page is multi-window: the exporter's short horizon (about 5 minutes) sees the drop
// within minutes, and the long window (1 hour) confirms it, as an SLO burn-rate alert
// would: the hour must have lost at least one short horizon's worth of the critical drop
// (critical x short / long), so a short horizon that is bad while the hour is not does not
// page. A model with too little feedback for the short horizon pages from the long window
// alone. Gates: minWindowSamples labelled samples in the horizon that is read.
local lib = import '../lib.libsonnet';

{
  local c = $._config,
  local v = lib.vars(c) {
    confirm: lib.num(c.thresholds.liveAccuracyDropCritical * c.shortWindowSeconds / c.longWindowSeconds),
  },
  // The series' value for this alert's instance, model and version, then `suffix`; nothing
  // when the series is absent (too few samples).
  local details(kind, suffix='') =
    ('{{ with printf `%(p)s_' + kind + '{instance=%%q,model=%%q,version=%%q}` $labels.instance $labels.model $labels.version | query }}{{ . | first | value | humanizePercentage }}' + suffix + '{{ end }}') % v,
  local evaluated = details('model_accuracy'),
  local percent(x) = '%d%%' % std.round(100 * x),

  prometheusAlerts+:: {
    groups+: [
      lib.group('model-live', [
        lib.alert(
          c,
          'ModelLiveAccuracyDropped',
          |||
            model_version:%(p)s_live_accuracy_drop:ratio > %(liveAccuracyDropWarning)s
            and %(on)s (%(p)s_window_samples{kind="labelled"} >= %(minSamples)s)
            and %(on)s (%(p)s_model_active == 1)
          ||| % v,
          'warning',
          'ml-model',
          'live_accuracy',
          'Live accuracy more than %s below evaluation accuracy' % percent(c.thresholds.liveAccuracyDropWarning),
          '{{ $value | humanizePercentage }}',
          'Model {{ $labels.model }} version {{ $labels.version }} (active) has had a live accuracy {{ $value | humanizePercentage }} below its evaluation accuracy over the last window (' +
          details('live_accuracy') + ' live vs ' + evaluated + ' evaluated, over ' +
          ('{{ with printf `%(p)s_window_samples{instance=%%q,model=%%q,version=%%q,kind="labelled"}` $labels.instance $labels.model $labels.version | query }}{{ . | first | value | printf "%%.0f" }}{{ end }}' % v) +
          ' labelled predictions).',
        ),
        lib.alert(
          c,
          'ModelLiveAccuracyCritical',
          |||
            (
              (
                model_version:%(p)s_short_live_accuracy_drop:ratio > %(liveAccuracyDropCritical)s
                and %(on)s (model_version:%(p)s_live_accuracy_drop:ratio > %(confirm)s)
                and %(on)s (%(p)s_short_window_samples{kind="labelled"} >= %(minSamples)s)
              )
              or
              (
                model_version:%(p)s_live_accuracy_drop:ratio > %(liveAccuracyDropCritical)s
                and %(on)s (%(p)s_window_samples{kind="labelled"} >= %(minSamples)s)
                unless %(on)s (%(p)s_short_window_samples{kind="labelled"} >= %(minSamples)s)
              )
            )
            and %(on)s (%(p)s_model_active == 1)
          ||| % v,
          'critical',
          'ml-model',
          'live_accuracy',
          'Live accuracy more than %s below evaluation accuracy' % percent(c.thresholds.liveAccuracyDropCritical),
          '{{ $value | humanizePercentage }}',
          'Model {{ $labels.model }} version {{ $labels.version }} (active) has a live accuracy {{ $value | humanizePercentage }} below its evaluation accuracy (' +
          details('short_live_accuracy', ' over the last minutes, ') +
          ('{{ with printf `%(p)s_live_accuracy{instance=%%q,model=%%q,version=%%q}` $labels.instance $labels.model $labels.version | query }}{{ . | first | value | humanizePercentage }}{{ end }}' % v) +
          ' over the last window, vs ' + evaluated + ' evaluated). Immediate action required.',
        ),
        lib.alert(
          c,
          'ModelEstimatedAccuracyDropped',
          |||
            model_version:%(p)s_estimated_accuracy_drop:ratio > %(estimatedAccuracyDropWarning)s
            and %(on)s (%(p)s_window_samples{kind="confidence"} >= %(minSamples)s)
            and %(on)s (%(p)s_model_active == 1)
          ||| % v,
          'warning',
          'ml-model',
          'estimated_accuracy',
          'Estimated accuracy (no labels needed) more than %s below evaluation accuracy' % percent(c.thresholds.estimatedAccuracyDropWarning),
          '{{ $value | humanizePercentage }}',
          'Model {{ $labels.model }} version {{ $labels.version }} (active) has an estimated accuracy {{ $value | humanizePercentage }} below its evaluation accuracy (' +
          details('estimated_accuracy') + ' estimated from confidences vs ' + evaluated + ' evaluated).',
        ),
      ]),
    ],
  },
}
