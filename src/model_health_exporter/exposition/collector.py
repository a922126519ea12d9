"""Custom collectors: every scrape builds metric families afresh from the current
immutable snapshot, so a model or version that disappears leaves no stale series."""

from __future__ import annotations

import math
import platform
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from model_health_exporter.quality_metrics import QUALITY_METRICS
from model_health_exporter.schema import ModelMetrics
from model_health_exporter.sharding import Shard
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.health import LEVELS as HEALTH_LEVELS
from model_health_exporter.state.health import RETRAIN_REASONS, HealthView
from model_health_exporter.state.live import TalliesView
from model_health_exporter.state.registry import ModelView, Snapshot, VersionView
from model_health_exporter.stats.degradation import (
    DEFAULT_BANDS,
    SeverityBands,
    degradation_severity_level,
)

# Only for types: windows imports numpy, whose import starts a thread (see cli._run).
if TYPE_CHECKING:
    from model_health_exporter.state.windows import WindowSummary

_VERSION = ("model", "version")


def _dataset(metrics: ModelMetrics, attr: str) -> float | None:
    stats = metrics.dataset_stats
    value: int | None = None if stats is None else getattr(stats, attr)
    return None if value is None else float(value)


# (suffix, help, getter) of gauges read straight from metrics.json
_FILE_GAUGES: tuple[tuple[str, str, Callable[[ModelMetrics], float | None]], ...] = (
    *((f"model_{m.name}", m.help, lambda mm, f=m.field: getattr(mm, f)) for m in QUALITY_METRICS),
    ("training_samples", "Samples the model was trained on.", lambda m: m.training_samples),
    (
        "training_duration_seconds",
        "Training wall time in seconds.",
        lambda m: m.training_duration_sec,
    ),
    (
        "dataset_samples",
        "Total samples in the training dataset.",
        lambda m: _dataset(m, "total_samples"),
    ),
    (
        "dataset_unique_items",
        "Unique items in the training dataset.",
        lambda m: _dataset(m, "unique_items"),
    ),
    (
        "dataset_unique_processes",
        "Unique processes in the training dataset.",
        lambda m: _dataset(m, "unique_processes"),
    ),
    (
        "dataset_unique_candidates",
        "Unique prediction targets in the training dataset.",
        lambda m: _dataset(m, "unique_candidates"),
    ),
    (
        "dataset_columns",
        "Columns in the training dataset.",
        lambda m: _dataset(m, "total_columns"),
    ),
    (
        "model_generated_timestamp_seconds",
        "When metrics.json was generated (generated_at), Unix time.",
        lambda m: m.generated_at.timestamp() if m.generated_at else None,
    ),
)


class ModelCollector(Collector):
    """Model quality, dataset statistics, thresholds and degradation per model version."""

    def __init__(self, snapshot: Callable[[], Snapshot], namespace: str) -> None:
        self._snapshot = snapshot
        self._ns = namespace

    def describe(self) -> Iterator[Metric]:
        # Families without samples: registering must not trigger a scan-dependent collect.
        return model_families(self._ns, ())

    def collect(self) -> Iterator[Metric]:
        return model_families(self._ns, self._snapshot().models.values())


def model_families(
    namespace: str, models: Iterable[ModelView], bands: SeverityBands = DEFAULT_BANDS
) -> Iterator[Metric]:
    """The model metric families, always the same ones in the same order, holding the
    samples of `models`."""
    families = _ModelFamilies(namespace, bands)
    for model in models:
        families.add_model(model)
        for version in model.versions:
            families.add_version(version)
    return families.all()


@dataclass
class _ModelFamilies:
    ns: str
    bands: SeverityBands = DEFAULT_BANDS
    file_gauges: list[tuple[GaugeMetricFamily, Callable[[ModelMetrics], float | None]]] = field(
        init=False
    )

    def __post_init__(self) -> None:
        ns = self.ns
        self.file_gauges = [
            (GaugeMetricFamily(f"{ns}_{suffix}", help_, labels=_VERSION), getter)
            for suffix, help_, getter in _FILE_GAUGES
        ]
        self.missing = GaugeMetricFamily(
            f"{ns}_dataset_missing_ratio",
            "Share of missing values per training column (0-1).",
            labels=[*_VERSION, "column"],
        )
        self.info = InfoMetricFamily(
            f"{ns}_model",
            "Model version metadata (model_version from metrics.json).",
            labels=_VERSION,
        )
        self.active = GaugeMetricFamily(
            f"{ns}_model_active",
            "1 for the version the model serves (ACTIVE file, current symlink or newest).",
            labels=_VERSION,
        )
        self.valid = GaugeMetricFamily(
            f"{ns}_model_metrics_file_valid",
            "1 if metrics.json parsed and validated; 0 while the last valid values are kept.",
            labels=_VERSION,
        )
        self.loaded = GaugeMetricFamily(
            f"{ns}_model_metrics_file_loaded_timestamp_seconds",
            "When the exported metrics.json content was read, Unix time.",
            labels=_VERSION,
        )
        self.degradation = GaugeMetricFamily(
            f"{ns}_model_degradation_ratio",
            "Relative degradation against the baseline target; 0.1 = 10% worse, negative = better.",
            labels=[*_VERSION, "metric"],
        )
        self.threshold = GaugeMetricFamily(
            f"{ns}_model_quality_threshold",
            "Alert threshold per model. Below it breaches for higher-is-better metrics; above it "
            "for log_loss, mae, mse, rmse, mape, smape and dataset_missing_ratio.",
            labels=["model", "metric", "severity"],
        )
        self.baseline = GaugeMetricFamily(
            f"{ns}_model_baseline",
            "Baseline (target) value of a quality metric per model.",
            labels=["model", "metric"],
        )
        self.severity = GaugeMetricFamily(
            f"{ns}_model_degradation_severity",
            "Severity band of the degradation against the baseline: 0 none, 1 low (< 5%), "
            "2 medium (5-10%), 3 high (10-20%), 4 critical (> 20%).",
            labels=[*_VERSION, "metric"],
        )
        self.trend = GaugeMetricFamily(
            f"{ns}_model_quality_trend_slope",
            "Least-squares slope of a quality metric across the model's versions by "
            "generated_at, in the metric's unit per day.",
            labels=["model", "metric"],
        )

    def add_model(self, model: ModelView) -> None:
        name = model.name
        for metric, levels in model.baseline.levels.items():
            if levels.target is not None:
                self.baseline.add_metric([name, metric], levels.target)
            for severity in ("warning", "critical"):
                value = getattr(levels, severity)
                if value is not None:
                    self.threshold.add_metric([name, metric, severity], value)
        for metric, slope in model.trends.items():
            self.trend.add_metric([name, metric], slope)
        expected = model.baseline.expected
        for metric, value in (
            ("training_samples", expected.min_samples),
            ("dataset_unique_items", expected.min_unique_items),
            ("dataset_missing_ratio", expected.max_missing_rate),
        ):
            if value is not None:
                self.threshold.add_metric([name, metric, "warning"], value)

    def add_version(self, view: VersionView) -> None:
        labels = [view.model, view.version]
        self.active.add_metric(labels, 1.0 if view.active else 0.0)
        self.valid.add_metric(labels, 1.0 if view.valid else 0.0)
        metrics = view.metrics
        if metrics is None:
            return
        if view.loaded_at is not None:
            self.loaded.add_metric(labels, view.loaded_at)
        self.info.add_metric(labels, {"model_version": metrics.model_version or ""})
        for family, getter in self.file_gauges:
            value = getter(metrics)
            if value is not None:
                family.add_metric(labels, float(value))
        for column, rate in view.missing_rates.items():
            self.missing.add_metric([*labels, column], rate)
        for metric, ratio in view.degradation.items():
            self.degradation.add_metric([*labels, metric], ratio)
            self.severity.add_metric(
                [*labels, metric], float(degradation_severity_level(ratio, self.bands))
            )

    def all(self) -> Iterator[Metric]:
        yield from (family for family, _ in self.file_gauges)
        yield from (
            self.missing,
            self.info,
            self.active,
            self.valid,
            self.loaded,
            self.degradation,
            self.severity,
            self.threshold,
            self.baseline,
            self.trend,
        )


@dataclass
class ExporterStatus:
    """The exporter's own state, shared by the daemon's threads."""

    errors: LabelledCounter
    dropped: LabelledCounter
    config_reload_ok: bool = True
    config_reload_timestamp: float = 0.0
    web_config_reload_ok: bool = True
    # Whether the checkpoint could be saved to the state dir (True without one).
    state_writable: Callable[[], bool] = lambda: True
    shard: Shard = field(default_factory=Shard)


class ExporterCollector(Collector):
    """The exporter's own health: build, errors, scans, configuration reloads."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        status: ExporterStatus,
        namespace: str,
        version: str,
    ) -> None:
        self._snapshot = snapshot
        self._status = status
        self._ns = namespace
        self._version = version

    def collect(self) -> Iterator[Metric]:
        ns, status, snap = self._ns, self._status, self._snapshot()
        build = GaugeMetricFamily(
            f"{ns}_exporter_build_info",
            "Exporter build; always 1.",
            labels=["version", "python_version"],
        )
        build.add_metric([self._version, platform.python_version()], 1.0)
        yield build
        shard = GaugeMetricFamily(
            f"{ns}_exporter_shard_info",
            "The shard of the models this instance exports (shard of shards, by a hash of "
            "the model name); always 1.",
            labels=["shard", "shards"],
        )
        shard.add_metric([str(status.shard.index), str(status.shard.count)], 1.0)
        yield shard
        errors = CounterMetricFamily(
            f"{ns}_exporter_errors",
            "Problems met reading inputs, by source and reason.",
            labels=["source", "reason"],
        )
        for (source, reason), count in sorted(status.errors.values().items()):
            errors.add_metric([source, reason], count)
        yield errors
        dropped = CounterMetricFamily(
            f"{ns}_exporter_dropped",
            "Items not exported because a cardinality limit was reached.",
            labels=["limit"],
        )
        for (limit,), count in sorted(status.dropped.values().items()):
            dropped.add_metric([limit], count)
        yield dropped
        if snap.last_scan is not None:
            yield GaugeMetricFamily(
                f"{ns}_exporter_last_scan_timestamp_seconds",
                "When the last full scan of the model directories finished, Unix time.",
                value=snap.last_scan,
            )
        yield GaugeMetricFamily(f"{ns}_exporter_models", "Models tracked.", value=len(snap.models))
        yield GaugeMetricFamily(
            f"{ns}_exporter_model_versions",
            "Model versions tracked.",
            value=sum(len(m.versions) for m in snap.models.values()),
        )
        yield GaugeMetricFamily(
            f"{ns}_exporter_config_last_reload_successful",
            "1 if the last configuration load succeeded.",
            value=1.0 if status.config_reload_ok else 0.0,
        )
        yield GaugeMetricFamily(
            f"{ns}_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully, Unix time.",
            value=status.config_reload_timestamp,
        )
        yield GaugeMetricFamily(
            f"{ns}_exporter_web_config_last_reload_successful",
            "1 if the last load of --web.config.file succeeded (1 without one).",
            value=1.0 if status.web_config_reload_ok else 0.0,
        )
        yield GaugeMetricFamily(
            f"{ns}_exporter_state_writable",
            "0 while the checkpoint cannot be saved to the state directory, else 1.",
            value=1.0 if status.state_writable() else 0.0,
        )


# Window summary key -> metric suffix, with help text.
_WINDOW_NAMES: dict[str, str] = {
    **{
        m: f"live_{m}"
        for m in (
            "accuracy",
            "precision_weighted",
            "recall_weighted",
            "f1_score",
            "precision_macro",
            "recall_macro",
            "f1_macro",
            "auc_roc",
            "auc_roc_error_bound",
            "log_loss",
            "mae",
            "mse",
            "rmse",
            "r2",
            "mape",
            "smape",
        )
    },
    "confidence_mean": "confidence_mean",
    "confidence_median": "confidence_median",
    "confidence_stddev": "confidence_stddev",
    "low_confidence_ratio": "low_confidence_ratio",
    **{
        m: m
        for m in (
            "data_drift_share",
            "prediction_psi",
            "prediction_js_distance",
            "prediction_drift_p_value",
            "prediction_drift_detected",
            "prediction_mean_shift",
            "confidence_psi",
            "confidence_drift_p_value",
            "invalid_record_ratio",
            "estimated_accuracy",
            "estimated_precision_weighted",
            "estimated_recall_weighted",
            "estimated_f1_score",
            "estimation_calibrated",
            "reference_samples",
        )
    },
}
_WINDOW_HELP: dict[str, str] = {
    "accuracy": "Accuracy on predictions labelled by feedback in the live window (0-1).",
    "precision_weighted": "Support-weighted precision in the live window (0-1).",
    "recall_weighted": "Support-weighted recall in the live window (0-1).",
    "f1_score": "Support-weighted F1 in the live window (0-1).",
    "precision_macro": "Macro-averaged precision in the live window (0-1).",
    "recall_macro": "Macro-averaged recall in the live window (0-1).",
    "f1_macro": "Macro-averaged F1 in the live window (0-1).",
    "auc_roc": "One-vs-rest ROC AUC in the live window, from a bounded score sketch (0-1).",
    "auc_roc_error_bound": "Largest possible difference between live_auc_roc and the ROC AUC "
    "of the raw scores (0-0.5).",
    "log_loss": "Log loss in the live window.",
    "mae": "Mean absolute error in the live window, in the target's unit.",
    "mse": "Mean squared error in the live window.",
    "rmse": "Root mean squared error in the live window, in the target's unit.",
    "r2": "R² in the live window.",
    "mape": "Mean absolute percentage error in the live window, as a ratio.",
    "smape": "Symmetric mean absolute percentage error in the live window, as a ratio.",
    "confidence_mean": "Mean confidence of the predicted class in the live window (0-1).",
    "confidence_median": "Median confidence in the live window (0-1, within 0.01).",
    "confidence_stddev": "Standard deviation of the confidence in the live window.",
    "low_confidence_ratio": "Share of predictions below the low-confidence threshold (0-1).",
    "data_drift_share": "Share of features flagged as drifted in the live window (0-1).",
    "prediction_psi": "PSI of the predicted class (or output) distribution against the reference.",
    "prediction_js_distance": "Jensen-Shannon distance of the prediction distribution (0-1).",
    "prediction_drift_p_value": "p-value of the prediction distribution test (KS or chi-square).",
    "prediction_drift_detected": "1 if the prediction distribution drifted from the reference.",
    "prediction_mean_shift": "Mean of the output (regression) or confidence (classification) "
    "minus its reference mean.",
    "confidence_psi": "PSI of the confidence distribution against the reference.",
    "confidence_drift_p_value": "KS p-value of the confidence distribution against the reference.",
    "invalid_record_ratio": "Share of this version's log lines that failed validation (0-1).",
    "estimated_accuracy": "Accuracy estimated without labels from calibrated confidence (0-1).",
    "estimated_precision_weighted": "Weighted precision estimated without labels (0-1).",
    "estimated_recall_weighted": "Weighted recall estimated without labels (0-1).",
    "estimated_f1_score": "Weighted F1 estimated without labels (0-1).",
    "estimation_calibrated": "1 if the estimate uses isotonic calibration fit on the reference.",
    "reference_samples": "Rows of the reference the window is compared against.",
}
_WINDOW_GAUGES = tuple((_WINDOW_NAMES[k], _WINDOW_HELP[k]) for k in _WINDOW_NAMES)
# Per-feature window statistics: summary key -> (metric suffix, help).
_FEATURE_GAUGES: dict[str, tuple[str, str]] = {
    "psi": (
        "feature_psi",
        "Population stability index against the reference (0.1 warn, 0.2 drift).",
    ),
    "js_distance": (
        "feature_js_distance",
        "Jensen-Shannon distance to the reference (base 2, 0-1).",
    ),
    "kl_divergence": ("feature_kl_divergence", "KL divergence from the reference (smoothed)."),
    "ks_statistic": ("feature_ks_statistic", "Two-sample KS statistic over the reference bins."),
    "ks_statistic_error_bound": (
        "feature_ks_statistic_error_bound",
        "How far the raw values' KS statistic can lie above feature_ks_statistic (0-1).",
    ),
    "drift_p_value": ("feature_drift_p_value", "KS (numeric) or chi-square (categorical) p-value."),
    "wasserstein": ("feature_wasserstein", "Wasserstein distance divided by the reference std."),
    "drift_detected": ("feature_drift_detected", "1 if the feature drifted (see --drift.method)."),
    "missing_ratio": ("feature_missing_ratio", "Share of predictions missing the feature (0-1)."),
    "out_of_range_ratio": (
        "feature_out_of_range_ratio",
        "Share of values outside the reference range or of the wrong type (0-1).",
    ),
    "unseen_category_ratio": (
        "feature_unseen_category_ratio",
        "Share of values not among the reference's top categories (0-1).",
    ),
}


# The short horizon (--logs.window-short-buckets): only what the fast alerts read, so the
# per-feature series grow by one family, not ten.
_SHORT_GAUGES: dict[str, tuple[str, str]] = {
    "accuracy": (
        "short_live_accuracy",
        "Accuracy on predictions labelled in the short horizon of the live window (0-1).",
    ),
    "estimated_accuracy": (
        "short_estimated_accuracy",
        "Accuracy estimated without labels over the short horizon (0-1).",
    ),
    "data_drift_share": (
        "short_data_drift_share",
        "Share of features flagged as drifted over the short horizon (0-1).",
    ),
}
_SHORT_FEATURE_GAUGES: dict[str, tuple[str, str]] = {
    "drift_detected": (
        "short_feature_drift_detected",
        "1 if the feature drifted over the short horizon (see --drift.method).",
    ),
}


class PredictionCollector(Collector):
    """Counters, histograms and live-window gauges from the prediction logs."""

    def __init__(
        self, tallies: Callable[[], Mapping[tuple[str, str], TalliesView]], namespace: str
    ) -> None:
        self._tallies = tallies
        self._ns = namespace

    def describe(self) -> Iterator[Metric]:
        return prediction_families(self._ns, ())

    def collect(self) -> Iterator[Metric]:
        return prediction_families(self._ns, self._tallies().values())


def prediction_families(namespace: str, views: Iterable[TalliesView]) -> Iterator[Metric]:
    """The prediction-log families, always the same ones in the same order."""
    ns = namespace
    predictions = CounterMetricFamily(
        f"{ns}_predictions", "Predictions logged, failed ones included.", labels=_VERSION
    )
    errors = CounterMetricFamily(
        f"{ns}_prediction_errors",
        "Failed predictions by the error type the serving code logged.",
        labels=[*_VERSION, "error_type"],
    )
    feedback = CounterMetricFamily(
        f"{ns}_feedback", "Ground-truth (feedback) records logged.", labels=_VERSION
    )
    latency = HistogramMetricFamily(
        f"{ns}_prediction_latency_seconds", "Prediction latency in seconds.", labels=_VERSION
    )
    confidence = HistogramMetricFamily(
        f"{ns}_prediction_confidence",
        "Confidence of the predicted class (0-1).",
        labels=_VERSION,
    )
    joins = {
        outcome: CounterMetricFamily(f"{ns}_feedback_{outcome}", help_, labels=_VERSION)
        for outcome, help_ in (
            ("matched", "Feedback records joined to their prediction."),
            ("expired", "Predictions whose feedback did not come within the limits."),
            ("unmatched", "Feedback records with no waiting prediction."),
        )
    }
    waiting = GaugeMetricFamily(
        f"{ns}_feedback_waiting",
        "Feedback records read before their prediction, waiting for it.",
        labels=_VERSION,
    )
    window_samples = GaugeMetricFamily(
        f"{ns}_window_samples",
        "Samples in the live window: predictions, labelled (joined) and confidence.",
        labels=[*_VERSION, "kind"],
    )
    window_gauges = {
        name: GaugeMetricFamily(f"{ns}_{name}", help_, labels=_VERSION)
        for name, help_ in _WINDOW_GAUGES
    }
    feature_gauges = {
        key: GaugeMetricFamily(f"{ns}_{name}", help_, labels=[*_VERSION, "feature"])
        for key, (name, help_) in _FEATURE_GAUGES.items()
    }
    short_samples = GaugeMetricFamily(
        f"{ns}_short_window_samples",
        "Samples in the short horizon of the live window, by kind as window_samples.",
        labels=[*_VERSION, "kind"],
    )
    short_gauges = {
        key: GaugeMetricFamily(f"{ns}_{name}", help_, labels=_VERSION)
        for key, (name, help_) in _SHORT_GAUGES.items()
    }
    short_feature_gauges = {
        key: GaugeMetricFamily(f"{ns}_{name}", help_, labels=[*_VERSION, "feature"])
        for key, (name, help_) in _SHORT_FEATURE_GAUGES.items()
    }
    reference = InfoMetricFamily(
        f"{ns}_reference",
        "The reference a version's window is compared against: profile, jsonl, csv "
        "(files next to metrics.json) or predictions (its first predictions).",
        labels=_VERSION,
    )
    for t in views:
        labels = [t.model, t.version]
        predictions.add_metric(labels, t.predictions)
        feedback.add_metric(labels, t.feedback)
        for error_type, count in t.errors:
            errors.add_metric([*labels, error_type], count)
        latency.add_metric(labels, _buckets(t.latency), t.latency_sum)
        confidence.add_metric(labels, _buckets(t.confidence), t.confidence_sum)
        joins["matched"].add_metric(labels, t.feedback_matched)
        joins["expired"].add_metric(labels, t.feedback_expired)
        joins["unmatched"].add_metric(labels, t.feedback_unmatched)
        waiting.add_metric(labels, t.feedback_waiting)
        for kind, count in t.window.samples.items():
            window_samples.add_metric([*labels, kind], count)
        for name, value in t.window.metrics.items():
            gauge = _WINDOW_NAMES.get(name)
            if gauge is not None:  # others feed the health score only
                window_gauges[gauge].add_metric(labels, value)
        for feature, stats in t.window.features.items():
            for key, value in stats.items():
                feature_gauges[key].add_metric([*labels, feature], value)
        if t.window.reference_source is not None:
            reference.add_metric(labels, {"source": t.window.reference_source})
        if t.window.short is not None:
            _add_short(labels, t.window.short, short_samples, short_gauges, short_feature_gauges)
    yield from (predictions, errors, feedback, latency, confidence, *joins.values(), waiting)
    yield window_samples
    yield from window_gauges.values()
    yield from feature_gauges.values()
    yield short_samples
    yield from short_gauges.values()
    yield from short_feature_gauges.values()
    yield reference


def _add_short(
    labels: list[str],
    short: WindowSummary,
    samples: GaugeMetricFamily,
    gauges: Mapping[str, GaugeMetricFamily],
    feature_gauges: Mapping[str, GaugeMetricFamily],
) -> None:
    for kind, count in short.samples.items():
        samples.add_metric([*labels, kind], count)
    for key, gauge in gauges.items():
        if (value := short.metrics.get(key)) is not None:
            gauge.add_metric(labels, value)
    for feature, stats in short.features.items():
        for key, gauge in feature_gauges.items():
            if (value := stats.get(key)) is not None:
                gauge.add_metric([*labels, feature], value)


def _buckets(cumulative: tuple[tuple[float, int], ...]) -> list[tuple[str, float]]:
    return [("+Inf" if math.isinf(b) else repr(float(b)), float(n)) for b, n in cumulative]


def health_families(namespace: str, views: Iterable[HealthView]) -> Iterator[Metric]:
    """Health score, its checks and the retraining recommendation, always the same
    families in the same order."""
    ns = namespace
    score = GaugeMetricFamily(
        f"{ns}_model_health_score",
        "Weighted health score 0-100 of the checks with data (weights renormalised over them).",
        labels=_VERSION,
    )
    check = GaugeMetricFamily(
        f"{ns}_model_health_check_score",
        "Score 0-100 of one health check; absent while the check has no data.",
        labels=[*_VERSION, "check"],
    )
    weight = GaugeMetricFamily(
        f"{ns}_model_health_check_weight",
        "Effective weight of a check in the health score (0 when left out for lack of data).",
        labels=[*_VERSION, "check"],
    )
    level = GaugeMetricFamily(
        f"{ns}_model_health_level",
        "1 for the current health level: excellent >= 90, good >= 70, fair >= 50, poor.",
        labels=[*_VERSION, "level"],
    )
    source = InfoMetricFamily(
        f"{ns}_model_health_performance",
        "Which accuracy the performance check used: live, estimated or evaluation.",
        labels=_VERSION,
    )
    recommended = GaugeMetricFamily(
        f"{ns}_model_retrain_recommended",
        "1 when retraining is recommended: a trigger fired and enough new data exists.",
        labels=_VERSION,
    )
    reason = GaugeMetricFamily(
        f"{ns}_model_retrain_reason",
        "1 for each retraining trigger that holds (performance_drop, data_drift, model_age, "
        "new_data, error_rate).",
        labels=[*_VERSION, "reason"],
    )
    for view in views:
        labels = [view.model, view.version]
        if view.score is not None:
            score.add_metric(labels, view.score)
            for name in HEALTH_LEVELS:
                level.add_metric([*labels, name], 1.0 if name == view.level else 0.0)
        for name, value in view.checks:
            check.add_metric([*labels, name], value)
        for name, value in view.weights:
            weight.add_metric([*labels, name], value)
        if view.performance_source is not None:
            source.add_metric(labels, {"source": view.performance_source})
        recommended.add_metric(labels, 1.0 if view.retrain_recommended else 0.0)
        for name in RETRAIN_REASONS:
            reason.add_metric([*labels, name], 1.0 if name in view.retrain_reasons else 0.0)
    yield from (score, check, weight, level, source, recommended, reason)
