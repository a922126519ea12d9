"""Series one model costs Prometheus, counted on real /metrics output (docs/scaling.md).

For each configuration, a model tree with one model of V versions (metrics.json with
every quality metric and K missing-rate columns, a baseline_metrics.json, an ACTIVE
file), whose active version has a prediction log of enough classification predictions
(C classes with probabilities, N numeric and S categorical features, latency, some
errors of E types) and feedback for a third of them, so every window metric is present.
The daemon is started as users start it, /metrics is scraped once the log is counted
and the window has its samples, and the samples carrying `model="m"` are counted by
family (each histogram bucket is a series, as Prometheus stores it).

Configurations vary one quantity at a time from a base, so the cost per numeric feature,
per categorical feature, per class, per error type, per extra version (without logs) and
per missing-rate column can be read off as differences.

    .venv/bin/python bench/series_per_model.py [--workdir /tmp]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from _harness import BASELINE, Daemon, http_get, machine, source_state, table, write_results

PREDICTIONS = 600  # above --logs.window-min-samples (100) and the 200 of the reference


@dataclass(frozen=True)
class Shape:
    numeric: int = 4
    categorical: int = 4
    classes: int = 3
    versions: int = 1
    error_types: int = 2
    columns: int = 8  # missing-rate columns in metrics.json
    logged: int = 1  # versions with prediction logs (the newest ones; the last is active)


def metrics_doc(version: str, index: int, columns: int) -> dict[str, Any]:
    names = [f"COL_{i}" for i in range(columns)]
    return {
        "generated_at": f"2026-11-{index + 1:02d}T00:00:00+00:00",
        "model_version": f"m-{version}",
        "training_samples": 5000,
        "dataset_stats": {
            "total_samples": 5000,
            "unique_items": 100,
            "unique_processes": 20,
            "unique_candidates": 30,
            "total_columns": columns,
            "column_names": names,
            "missing_rates": dict.fromkeys(names, 0.01),
        },
        "training_duration_sec": 12.5,
        "accuracy": 0.91,
        "precision_weighted": 0.9,
        "recall_weighted": 0.9,
        "f1_weighted": 0.9,
        "auc_roc": 0.95,
        "auc_pr": 0.8,
        "log_loss": 0.3,
    }


def build(root: Path, shape: Shape) -> None:
    rng = random.Random(5)
    model = root / "m"
    versions = [f"v{i}" for i in range(1, shape.versions + 1)]
    for index, version in enumerate(versions):
        (model / version).mkdir(parents=True)
        (model / version / "metrics.json").write_text(
            json.dumps(metrics_doc(version, index, shape.columns))
        )
    (model / "baseline_metrics.json").write_text(json.dumps(BASELINE))
    (model / "ACTIVE").write_text(versions[-1] + "\n")
    classes = [f"c{i}" for i in range(shape.classes)]
    lines = []
    for i in range(PREDICTIONS):
        weights = [rng.random() + 0.01 for _ in classes]
        total = sum(weights)
        probabilities = {c: round(w / total, 4) for c, w in zip(classes, weights, strict=True)}
        features: dict[str, Any] = {
            f"num_{j}": round(rng.gauss(0, 1), 3) for j in range(shape.numeric)
        }
        features |= {f"cat_{j}": rng.choice("abcdef") for j in range(shape.categorical)}
        record = {
            "id": f"r{i}",
            "features": features,
            "prediction": max(probabilities, key=probabilities.__getitem__),
            "probabilities": probabilities,
            "latency_ms": round(rng.lognormvariate(3, 0.5), 1),
            "error": f"E{(i // 10) % shape.error_types}" if i % 10 == 0 else None,
        }
        lines.append(json.dumps(record))
        if i % 3 == 0:
            lines.append(json.dumps({"id": f"r{i}", "actual": rng.choice(classes)}))
    for version in versions[-shape.logged :]:
        logs = model / version / "predictions"
        logs.mkdir()
        (logs / "bench.jsonl").write_text("\n".join(lines) + "\n")


def count_series(port: int) -> tuple[Counter[str], float]:
    _, body = http_get(port, "/metrics")
    per_family: Counter[str] = Counter()
    predictions = 0.0
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.labels.get("model") == "m":
                per_family[family.name] += 1
                if sample.name == "routing_ml_predictions_total":
                    predictions += sample.value
    return per_family, predictions


def measure(workdir: Path, name: str, shape: Shape) -> Counter[str]:
    root = workdir / name / "models"
    build(root, shape)
    # Without a reference file the first predictions become the reference: 200 of them
    # here, so that drift is computed from the rest (the default waits for 1,000).
    args = ["--drift.reference-predictions=200"]
    with Daemon(root, workdir / name / "daemon.log", args) as daemon:
        daemon.wait_ready(60)
        deadline = time.monotonic() + 60
        last: Counter[str] = Counter()
        stable = 0
        while time.monotonic() < deadline:
            series, predictions = count_series(daemon.port)
            # Counted, and the window summaries caught up (two equal scrapes in a row).
            if predictions == PREDICTIONS * shape.logged and series == last:
                stable += 1
                if stable >= 2:
                    return series
            else:
                stable = 0
            last = series
            time.sleep(1.0)
        raise TimeoutError(f"{name}: series did not settle: {daemon.log_tail()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    base = Shape()
    configs = {
        "base": base,
        "+4 numeric features": replace(base, numeric=base.numeric + 4),
        "+4 categorical features": replace(base, categorical=base.categorical + 4),
        "+3 classes": replace(base, classes=base.classes + 3),
        "+2 error types": replace(base, error_types=base.error_types + 2),
        "+2 versions (no logs)": replace(base, versions=base.versions + 2),
        "+1 version with logs": replace(base, versions=base.versions + 1, logged=2),
        "+8 missing-rate columns": replace(base, columns=base.columns + 8),
    }
    source = source_state()
    results: dict[str, Any] = {"machine": machine(source), "configs": {}}
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="series-per-model-") as tmp:
        counted = {}
        for name, shape in configs.items():
            print(f"{name}: {shape}", file=sys.stderr, flush=True)
            counted[name] = measure(Path(tmp), name.replace(" ", "_"), shape)
            results["configs"][name] = {"shape": asdict(shape), "series": counted[name]}
    base_total = sum(counted["base"].values())
    rows = []
    for name, series in counted.items():
        total = sum(series.values())
        rows.append([name, total, total - base_total if name != "base" else ""])
    print(table(["configuration", 'series with model="m"', "minus base"], rows))
    print()
    print("base, by family:")
    print(table(["family", "series"], sorted(counted["base"].items(), key=lambda kv: -kv[1])))
    print()
    for name, series in counted.items():
        if name == "base":
            continue
        diff = {f: series[f] - counted["base"][f] for f in set(series) | set(counted["base"])}
        print(f"{name}: " + ", ".join(f"{f} {d:+d}" for f, d in sorted(diff.items()) if d))
    path = write_results("series_per_model", results)
    print(f"\nresults: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
