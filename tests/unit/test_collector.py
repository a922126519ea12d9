from __future__ import annotations

import shutil
from pathlib import Path

from prometheus_client import CollectorRegistry

from model_health_exporter.exposition.collector import (
    ExporterCollector,
    ExporterStatus,
    ModelCollector,
)
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.registry import (
    ModelRegistry,
    RegistryConfig,
    RootConfig,
    initial_error_keys,
)
from tests.support import good_metrics, write_json


def build(root: Path, namespace: str = "routing_ml") -> tuple[ModelRegistry, CollectorRegistry]:
    status = ExporterStatus(
        LabelledCounter(initial_error_keys()), LabelledCounter([("max_models",)])
    )
    models = ModelRegistry(RegistryConfig(roots=(RootConfig(root),)), status.errors, status.dropped)
    models.full_scan()
    registry = CollectorRegistry()
    registry.register(ModelCollector(lambda: models.snapshot, namespace))
    registry.register(ExporterCollector(lambda: models.snapshot, status, namespace, "1.2.3"))
    return models, registry


def test_values_from_metrics_json(tmp_path: Path) -> None:
    write_json(
        tmp_path / "m/v1/metrics.json",
        good_metrics(
            "prod-v1",
            accuracy=0.78,
            auc_roc=0.97,
            dataset_stats={
                "total_samples": 1500,
                "unique_items": 120,
                "missing_rates": {"COL": 0.15},
            },
        ),
    )
    _, registry = build(tmp_path)
    v = {"model": "m", "version": "v1"}
    get = registry.get_sample_value
    assert get("routing_ml_model_accuracy", v) == 0.78
    assert get("routing_ml_model_f1_score", v) == 0.90
    assert get("routing_ml_model_auc_roc", v) == 0.97
    assert get("routing_ml_model_log_loss", v) is None  # absent in the file: no series
    assert get("routing_ml_training_samples", v) == 1500
    assert get("routing_ml_training_duration_seconds", v) == 3.5
    assert get("routing_ml_dataset_unique_items", v) == 120
    assert get("routing_ml_dataset_missing_ratio", {**v, "column": "COL"}) == 0.15
    assert get("routing_ml_model_info", {**v, "model_version": "prod-v1"}) == 1
    assert get("routing_ml_model_generated_timestamp_seconds", v) == 1_793_534_400  # 2026-11-01
    assert get("routing_ml_model_active", v) == 1
    assert get("routing_ml_model_metrics_file_valid", v) == 1
    assert get("routing_ml_model_degradation_ratio", {**v, "metric": "accuracy"}) == (
        (0.92 - 0.78) / 0.92
    )
    thr = {"model": "m", "metric": "accuracy", "severity": "critical"}
    assert get("routing_ml_model_quality_threshold", thr) == 0.80
    assert (
        get(
            "routing_ml_model_quality_threshold",
            {"model": "m", "metric": "training_samples", "severity": "warning"},
        )
        == 1000
    )
    assert get("routing_ml_model_baseline", {"model": "m", "metric": "accuracy"}) == 0.92
    assert (
        get(
            "routing_ml_exporter_build_info",
            {"version": "1.2.3", "python_version": __import__("platform").python_version()},
        )
        == 1
    )
    assert (
        get(
            "routing_ml_exporter_errors_total", {"source": "metrics_file", "reason": "invalid_json"}
        )
        == 0
    )  # pre-initialised
    assert get("routing_ml_exporter_models") == 1


def test_no_stale_series_after_a_version_disappears(tmp_path: Path) -> None:
    write_json(tmp_path / "m/v1/metrics.json", good_metrics())
    write_json(tmp_path / "m/v2/metrics.json", good_metrics(accuracy=0.5))
    models, registry = build(tmp_path)
    v2 = {"model": "m", "version": "v2"}
    assert registry.get_sample_value("routing_ml_model_accuracy", v2) == 0.5
    shutil.rmtree(tmp_path / "m/v2")
    models.full_scan()
    assert registry.get_sample_value("routing_ml_model_accuracy", v2) is None
    assert registry.get_sample_value("routing_ml_model_active", v2) is None


def test_namespace_is_configurable(tmp_path: Path) -> None:
    write_json(tmp_path / "m/v1/metrics.json", good_metrics())
    _, registry = build(tmp_path, "acme_ml")
    assert registry.get_sample_value("acme_ml_model_accuracy", {"model": "m", "version": "v1"})
    assert (
        registry.get_sample_value("routing_ml_model_accuracy", {"model": "m", "version": "v1"})
        is None
    )


def test_describe_does_not_need_a_scan(tmp_path: Path) -> None:
    collector = ModelCollector(lambda: (_ for _ in ()).throw(AssertionError("scanned")), "x")
    assert any(f.name == "x_model_accuracy" for f in collector.describe())
