"""The metric contract: what /metrics serves is exactly what docs/metrics.md documents,
passes `promtool check metrics`, and carries the values of the example model store."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from model_health_exporter import __version__
from tests.support import RunningDaemon, Samples, parse_samples, sample, write_json

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "metrics.md"
EXAMPLES = REPO / "examples" / "models"
NS = "routing_ml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")

# metrics.json field -> metric name (the Prometheus suffix and the `metric` label value)
QUALITY_FIELDS = {
    "accuracy": "accuracy",
    "precision_weighted": "precision_weighted",
    "recall_weighted": "recall_weighted",
    "f1_weighted": "f1_score",
    "auc_roc": "auc_roc",
    "auc_pr": "auc_pr",
    "log_loss": "log_loss",
    "mae": "mae",
    "mse": "mse",
    "rmse": "rmse",
    "r2": "r2",
    "mape": "mape",
    "smape": "smape",
}

# The user's quality baseline: what a model without its own baseline file is held to.
DEFAULT_LEVELS = {
    "accuracy": (0.92, 0.85, 0.80),
    "precision_weighted": (0.89, 0.82, 0.75),
    "recall_weighted": (0.91, 0.84, 0.78),
    "f1_score": (0.90, 0.83, 0.77),
}
DEFAULT_EXPECTED = {
    "training_samples": 1000,
    "dataset_unique_items": 50,
    "dataset_missing_ratio": 0.10,
}

# A regression model next to the examples, so that every documented model family has
# series and its labels can be compared too.
REGRESSION = {
    "generated_at": "2026-11-02T06:30:00+00:00",
    "model_version": "eta-1",
    "training_samples": 10000,
    "training_duration_sec": 12.5,
    "mae": 4.2,
    "mse": 30.25,
    "rmse": 5.5,
    "r2": 0.81,
    "mape": 0.12,
    "smape": 0.11,
}

# ---- the documented and the served contract -------------------------------------------


@dataclass(frozen=True)
class Family:
    type: str
    labels: frozenset[str]


_TABLE_HEADER = ["name", "type", "labels", "meaning"]


def documented_families(markdown: str) -> dict[str, Family]:
    """Rows of every `| name | type | labels | meaning |` table in docs/metrics.md."""
    families: dict[str, Family] = {}
    in_table = False
    for line in markdown.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if [c.lower() for c in cells] == _TABLE_HEADER:
            in_table = True
            continue
        if not in_table or re.fullmatch(r"[|:\- ]+", line):
            continue
        assert len(cells) == 4, f"metrics table row without 4 cells (a '|' in text?): {line}"
        name = cells[0].strip("`")
        assert name not in families, f"{name} documented twice"
        families[name] = Family(cells[1], frozenset(re.findall(r"`([^`]+)`", cells[2])))
    return families


@dataclass(frozen=True)
class Served:
    families: dict[str, Family]
    with_samples: frozenset[str]


def served_families(text: str) -> Served:
    """Families of a text-format exposition by their `# TYPE` line, with the union of
    label names of their samples."""
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, type_ = line.split(" ", 3)
            assert name not in types, f"family {name} served twice"
            types[name] = type_
    labels: dict[str, set[str]] = {name: set() for name in types}
    with_samples = set()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name = s.name
            if types.get(family.name) == "histogram":
                # x_bucket{le}, x_sum and x_count belong to the family x
                assert name.removeprefix(family.name) in ("_bucket", "_sum", "_count"), name
                name = family.name
            assert name in types, f"sample {s.name} outside its family's name"
            labels[name].update(set(s.labels) - {"le"})
            with_samples.add(name)
    return Served(
        {name: Family(type_, frozenset(labels[name])) for name, type_ in types.items()},
        frozenset(with_samples),
    )


def doc_promql() -> list[str]:
    return re.findall(r"```promql\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


# ---- the daemon -----------------------------------------------------------------------


def copy_examples(dest: Path) -> Path:
    models = dest / "models"
    shutil.copytree(EXAMPLES, models, symlinks=True)
    assert (models / "fraud" / "current").is_symlink()
    return models


def write_regression_logs(version_dir: Path) -> None:
    """Ten regression predictions, each off by exactly 0.5, and their feedback."""
    (version_dir / "predictions").mkdir()
    (version_dir / "predictions" / "p.jsonl").write_text(
        "".join(
            json.dumps({"id": i, "prediction": 10.0 + i, "latency_seconds": 0.01}) + "\n"
            for i in range(10)
        )
    )
    (version_dir / "feedback").mkdir()
    (version_dir / "feedback" / "f.jsonl").write_text(
        "".join(json.dumps({"id": i, "actual": 10.5 + i}) + "\n" for i in range(10))
    )


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    """One daemon over a copy of examples/models plus a regression model, for every
    read-only test of this module."""
    workdir = tmp_path_factory.mktemp("contract")
    models = copy_examples(workdir)
    write_json(models / "eta" / "v1" / "metrics.json", REGRESSION)
    write_regression_logs(models / "eta" / "v1")
    running = RunningDaemon(
        workdir,
        [f"--models.dir={models}", "--logs.poll-interval=0.05", "--logs.window-min-samples=5"],
    )
    try:
        running.wait_ready()
        # the window families exist once both example logs have been read
        running.wait_value(f"{NS}_live_mae", 0.5, model="eta", version="v1")
        running.wait_value(
            f"{NS}_feedback_matched_total", 10.0, model="routing", version="production-v3"
        )
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def text(daemon: RunningDaemon) -> str:
    return daemon.metrics_text()


@pytest.fixture(scope="module")
def samples(text: str) -> Samples:
    return parse_samples(text)


def example(model: str, version: str) -> dict[str, Any]:
    content: dict[str, Any] = json.loads((EXAMPLES / model / version / "metrics.json").read_text())
    return content


# ---- (a) served == documented ---------------------------------------------------------


def test_doc_tables_parse() -> None:
    documented = documented_families(DOC.read_text())
    assert len(documented) > 40
    for name, family in documented.items():
        assert name.startswith((f"{NS}_", "process_", "python_")), name
        assert family.type in {"gauge", "counter", "histogram", "summary"}, (name, family)
        if family.type == "counter":
            assert name.endswith("_total"), name


def test_served_families_equal_documented(text: str) -> None:
    documented = documented_families(DOC.read_text())
    served = served_families(text)
    assert {n: f.type for n, f in served.families.items()} == {
        n: f.type for n, f in documented.items()
    }
    # With the regression model added, every family has series, so every label set counts.
    assert served.with_samples == set(documented)
    assert served.families == documented


def test_namespace_flag_renames_every_own_family(start_daemon: Any, tmp_path: Path) -> None:
    models = copy_examples(tmp_path)
    write_json(models / "eta" / "v1" / "metrics.json", REGRESSION)
    write_regression_logs(models / "eta" / "v1")
    daemon = start_daemon(
        f"--models.dir={models}",
        "--namespace=acme_ml",
        "--logs.poll-interval=0.05",
        "--logs.window-min-samples=5",
    )
    daemon.wait_value("acme_ml_live_mae", 0.5, model="eta", version="v1")
    daemon.wait_value(
        "acme_ml_feedback_matched_total", 10.0, model="routing", version="production-v3"
    )
    served = served_families(daemon.metrics_text())
    expected = {
        re.sub(rf"^{NS}_", "acme_ml_", name): family
        for name, family in documented_families(DOC.read_text()).items()
    }
    assert served.families == expected


def test_doc_promql_uses_documented_names() -> None:
    queries = doc_promql()
    assert len(queries) >= 4
    documented = set(documented_families(DOC.read_text()))
    for query in queries:
        for name in re.findall(rf"\b{NS}_[a-z0-9_]+", query):
            assert name in documented, f"{name} in an example query is not documented"


@needs_promtool
def test_doc_promql_evaluates_on_the_served_series(samples: Samples, tmp_path: Path) -> None:
    """Every example query of docs/metrics.md parses and evaluates (joins included: a
    many-to-many match is an evaluation error) on the series the daemon serves."""
    assert PROMTOOL is not None
    rules = {
        "groups": [
            {
                "name": "docs",
                "rules": [
                    {"record": f"doc:query_{i}", "expr": q} for i, q in enumerate(doc_promql())
                ],
            }
        ]
    }
    series = [
        {
            "series": name
            + "{"
            + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels))
            + "}",
            "values": f"{value!r}x10",
        }
        for (name, labels), value in samples.items()
        if name.startswith(f"{NS}_")
    ]
    tests = {
        "rule_files": ["doc-queries.rules.json"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {"expr": "vector(1)", "eval_time": "5m", "exp_samples": [{"value": 1}]}
                ],
            }
        ],
    }
    # JSON is YAML
    (tmp_path / "doc-queries.rules.json").write_text(json.dumps(rules))
    (tmp_path / "doc-queries.test.json").write_text(json.dumps(tests))
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(tmp_path / "doc-queries.test.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- (b) promtool ---------------------------------------------------------------------


@needs_promtool
def test_promtool_check_metrics_passes(text: str) -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert result.stdout == ""


# ---- (c) values -----------------------------------------------------------------------


def test_quality_values_from_the_example_files(samples: Samples) -> None:
    assert sample(samples, f"{NS}_model_accuracy", model="routing", version="production-v3") == 0.93
    assert (
        sample(samples, f"{NS}_model_f1_score", model="routing", version="production-v3") == 0.915
    )
    assert sample(samples, f"{NS}_model_auc_pr", model="fraud", version="2026-10-01") == 0.74
    # Every quality field of every example version, and nothing for fields a file lacks.
    for model, version in [
        ("routing", "production-v1"),
        ("routing", "production-v2"),
        ("routing", "production-v3"),
        ("fraud", "2026-10-01"),
        ("fraud", "2026-11-01"),
    ]:
        content = example(model, version)
        for field, metric in QUALITY_FIELDS.items():
            served = sample(samples, f"{NS}_model_{metric}", model=model, version=version)
            assert served == content.get(field), (model, version, metric)


def test_regression_metrics(samples: Samples) -> None:
    for field in ("mae", "mse", "rmse", "r2", "mape", "smape"):
        assert (
            sample(samples, f"{NS}_model_{field}", model="eta", version="v1") == REGRESSION[field]
        )
    assert sample(samples, f"{NS}_model_accuracy", model="eta", version="v1") is None


def test_training_and_dataset_values(samples: Samples) -> None:
    v2 = {"model": "routing", "version": "production-v2"}
    assert sample(samples, f"{NS}_training_samples", **v2) == 900
    assert sample(samples, f"{NS}_training_duration_seconds", **v2) == 2.9
    assert sample(samples, f"{NS}_dataset_samples", **v2) == 900
    assert sample(samples, f"{NS}_dataset_unique_items", **v2) == 80
    assert sample(samples, f"{NS}_dataset_unique_processes", **v2) == 40
    assert sample(samples, f"{NS}_dataset_unique_candidates", **v2) == 40
    assert sample(samples, f"{NS}_dataset_columns", **v2) == 8
    rates = example("routing", "production-v2")["dataset_stats"]["missing_rates"]
    served_rates = {
        dict(labels)["column"]: value
        for (name, labels), value in samples.items()
        if name == f"{NS}_dataset_missing_ratio" and dict(labels)["version"] == "production-v2"
    }
    assert served_rates == rates
    assert served_rates["MATERIAL"] == 0.152
    fraud = {"model": "fraud", "version": "2026-11-01"}
    assert sample(samples, f"{NS}_training_duration_seconds", **fraud) == 437.5
    # fraud's files have no dataset_stats: absent, not 0
    assert sample(samples, f"{NS}_dataset_samples", **fraud) is None


def test_version_state(samples: Samples) -> None:
    versions = {
        ("routing", "production-v1"): 0,
        ("routing", "production-v2"): 0,
        ("routing", "production-v3"): 1,  # ACTIVE file, though v3 is also the newest
        ("fraud", "2026-10-01"): 0,
        ("fraud", "2026-11-01"): 1,  # `current` symlink
        ("eta", "v1"): 1,  # no marker: the newest (only) version
    }
    served_active = {
        (dict(labels)["model"], dict(labels)["version"]): value
        for (name, labels), value in samples.items()
        if name == f"{NS}_model_active"
    }
    assert served_active == versions
    for model, version in versions:
        labels = {"model": model, "version": version}
        assert sample(samples, f"{NS}_model_metrics_file_valid", **labels) == 1
        assert sample(samples, f"{NS}_model_metrics_file_loaded_timestamp_seconds", **labels)
    assert (
        sample(
            samples,
            f"{NS}_model_info",
            model="fraud",
            version="2026-11-01",
            model_version="fraud-2026-11-01",
        )
        == 1
    )
    assert (
        sample(
            samples,
            f"{NS}_model_generated_timestamp_seconds",
            model="routing",
            version="production-v3",
        )
        == datetime(2026, 11, 1, 12, 0, tzinfo=UTC).timestamp()
    )


def test_thresholds_and_baseline_from_routings_baseline_file(samples: Samples) -> None:
    baseline = json.loads((EXAMPLES / "routing" / "baseline_metrics.json").read_text())
    for field, levels in baseline["quality_thresholds"].items():
        metric = QUALITY_FIELDS[field]
        assert (
            sample(samples, f"{NS}_model_baseline", model="routing", metric=metric)
            == (levels["target"])
        )
        for severity in ("warning", "critical"):
            assert (
                sample(
                    samples,
                    f"{NS}_model_quality_threshold",
                    model="routing",
                    metric=metric,
                    severity=severity,
                )
                == levels[severity]
            ), (metric, severity)
    expected = baseline["expected_dataset"]
    for metric, key in [
        ("training_samples", "min_samples"),
        ("dataset_unique_items", "min_unique_items"),
        ("dataset_missing_ratio", "max_missing_rate"),
    ]:
        assert (
            sample(
                samples,
                f"{NS}_model_quality_threshold",
                model="routing",
                metric=metric,
                severity="warning",
            )
            == expected[key]
        )
        # dataset thresholds have no critical level
        assert (
            sample(
                samples,
                f"{NS}_model_quality_threshold",
                model="routing",
                metric=metric,
                severity="critical",
            )
            is None
        )
    # No version label on thresholds and baselines.
    for (name, labels), _ in samples.items():
        if name in (f"{NS}_model_quality_threshold", f"{NS}_model_baseline"):
            assert "version" not in dict(labels)


def test_models_without_a_baseline_file_get_the_built_in_defaults(samples: Samples) -> None:
    for metric, (target, warning, critical) in DEFAULT_LEVELS.items():
        labels = {"model": "fraud", "metric": metric}
        assert sample(samples, f"{NS}_model_baseline", **labels) == target
        assert sample(samples, f"{NS}_model_quality_threshold", severity="warning", **labels) == (
            warning
        )
        assert sample(samples, f"{NS}_model_quality_threshold", severity="critical", **labels) == (
            critical
        )
    for metric, value in DEFAULT_EXPECTED.items():
        assert (
            sample(
                samples,
                f"{NS}_model_quality_threshold",
                model="fraud",
                metric=metric,
                severity="warning",
            )
            == value
        )


def test_degradation_ratio(samples: Samples) -> None:
    def ratio(version: str, metric: str) -> float | None:
        return sample(
            samples,
            f"{NS}_model_degradation_ratio",
            model="routing",
            version=version,
            metric=metric,
        )

    # production-v2 is 15% worse than the 0.92 accuracy target: positive.
    assert ratio("production-v2", "accuracy") == pytest.approx((0.92 - 0.78) / 0.92, rel=1e-12)
    # production-v3 beats the F1 target 0.90 with 0.915: negative.
    assert ratio("production-v3", "f1_score") == pytest.approx((0.90 - 0.915) / 0.90, rel=1e-12)
    assert ratio("production-v1", "accuracy") == 0
    # No target for log_loss, and fraud's files carry accuracy but eta's do not.
    assert ratio("production-v3", "log_loss") is None
    assert (
        sample(
            samples, f"{NS}_model_degradation_ratio", model="eta", version="v1", metric="accuracy"
        )
        is None
    )


def test_exporter_self_metrics(samples: Samples) -> None:
    assert sample(samples, f"{NS}_exporter_models") == 3
    assert sample(samples, f"{NS}_exporter_model_versions") == 6
    assert sample(samples, f"{NS}_exporter_config_last_reload_successful") == 1
    build = [labels for name, labels in samples if name == f"{NS}_exporter_build_info"]
    assert len(build) == 1
    assert dict(build[0])["version"] == __version__
    errors = {
        tuple(sorted(dict(labels).items())): value
        for (name, labels), value in samples.items()
        if name == f"{NS}_exporter_errors_total"
    }
    # pre-initialised to 0 so that increase() sees the first error
    assert len(errors) >= 16
    assert set(errors.values()) == {0}
    assert sample(samples, f"{NS}_exporter_dropped_total", limit="max_columns") == 0
    assert sample(samples, f"{NS}_exporter_dropped_total", limit="max_models") == 0
    assert sample(samples, f"{NS}_exporter_dropped_total", limit="max_features") == 0
    last_scan = sample(samples, f"{NS}_exporter_last_scan_timestamp_seconds")
    assert last_scan is not None
    assert abs(last_scan - datetime.now(UTC).timestamp()) < 600


def test_invalid_file_keeps_last_values(start_daemon: Any, tmp_path: Path) -> None:
    """What docs/metrics.md promises for metrics_file_valid 0."""
    models = copy_examples(tmp_path)
    daemon = start_daemon(f"--models.dir={models}")
    v2 = {"model": "routing", "version": "production-v2"}
    loaded = daemon.value(f"{NS}_model_metrics_file_loaded_timestamp_seconds", **v2)
    path = models / "routing" / "production-v2" / "metrics.json"
    tmp = path.with_name(".metrics.json.tmp")
    tmp.write_text('{"accuracy": 0.5, ')  # a truncated write
    tmp.replace(path)
    daemon.wait_value(f"{NS}_model_metrics_file_valid", 0, **v2)
    after = daemon.samples()
    assert sample(after, f"{NS}_model_accuracy", **v2) == 0.78
    assert sample(after, f"{NS}_model_info", model_version="production-v2", **v2) == 1
    assert sample(after, f"{NS}_model_metrics_file_loaded_timestamp_seconds", **v2) == loaded
    assert (
        sample(after, f"{NS}_exporter_errors_total", source="metrics_file", reason="invalid_json")
        == 1
    )
    assert sample(after, f"{NS}_model_metrics_file_valid", model="routing", version="production-v3")


def test_per_model_baseline_file_overrides_field_by_field(
    start_daemon: Any, tmp_path: Path
) -> None:
    models = copy_examples(tmp_path)
    write_json(
        models / "routing" / "baseline_metrics.json",
        {
            "quality_thresholds": {"accuracy": {"target": 0.95, "warning": 0.9}},
            "expected_dataset": {"min_samples": 2000},
        },
    )
    daemon = start_daemon(f"--models.dir={models}")
    s = daemon.samples()

    def threshold(model: str, metric: str, severity: str) -> float | None:
        return sample(
            s, f"{NS}_model_quality_threshold", model=model, metric=metric, severity=severity
        )

    assert threshold("routing", "accuracy", "warning") == 0.9
    assert threshold("routing", "accuracy", "critical") == 0.80  # not in the file: default
    assert threshold("routing", "precision_weighted", "warning") == 0.82
    assert threshold("routing", "training_samples", "warning") == 2000
    assert threshold("routing", "dataset_unique_items", "warning") == 50
    assert threshold("fraud", "accuracy", "warning") == 0.85  # other models unaffected
    assert sample(s, f"{NS}_model_baseline", model="routing", metric="accuracy") == 0.95
    assert sample(
        s,
        f"{NS}_model_degradation_ratio",
        model="routing",
        version="production-v3",
        metric="accuracy",
    ) == pytest.approx((0.95 - 0.93) / 0.95, rel=1e-12)


# ---- (d) negotiation ------------------------------------------------------------------


def test_openmetrics_negotiation(daemon: RunningDaemon, samples: Samples) -> None:
    status, body, headers = daemon.get(
        "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    text = body.decode()
    assert text.endswith("# EOF\n")
    # The same series as the classic format; info and counter families are named the
    # OpenMetrics way, as docs/metrics.md says.
    families = {f.name: f.type for f in openmetrics_families(text)}
    assert families[f"{NS}_model"] == "info"
    assert families[f"{NS}_exporter_errors"] == "counter"
    served = {
        (s.name, frozenset(s.labels.items())) for f in openmetrics_families(text) for s in f.samples
    }
    assert served == set(samples)


def test_gzip(daemon: RunningDaemon, text: str) -> None:
    status, body, headers = daemon.get("/metrics", {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    unzipped = gzip.decompress(body).decode()
    assert served_families(unzipped) == served_families(text)


def test_name_filter(daemon: RunningDaemon) -> None:
    status, body, _ = daemon.get(f"/metrics?name[]={NS}_model_accuracy&name[]={NS}_model_active")
    assert status == 200
    served = served_families(body.decode())
    assert set(served.families) == {f"{NS}_model_accuracy", f"{NS}_model_active"}
