#!/usr/bin/env python3
"""Writes the example reference samples shipped in examples/models: a labelled
reference.jsonl for routing/production-v3 and a reference.csv for fraud/2026-11-01, drawn
from the demo writer's (undrifted) generator with a fixed seed, so `make run` compares
the demo stream with a real training sample. Run from the repository root:

    .venv/bin/python scripts/make-example-references.py
"""

from __future__ import annotations

import csv
import itertools
import json
import random
from pathlib import Path

from model_health_exporter.demo import PROFILES, generate

ROOT = Path(__file__).resolve().parents[1] / "examples" / "models"
ROWS = 1000
SEED = 20261201


def rows(model: str) -> list[dict[str, object]]:
    stream = generate(PROFILES[model], random.Random(SEED), "ref", lambda: False)
    out = []
    for item in itertools.islice((g for g in stream if g.feedback is not None), ROWS):
        record = {k: v for k, v in item.prediction.items() if k not in ("id", "error")}
        out.append(record | {"actual": item.feedback["actual"] if item.feedback else None})
    return out


def main() -> None:
    routing = ROOT / "routing" / "production-v3" / "reference.jsonl"
    routing.write_text("".join(json.dumps(r) + "\n" for r in rows("routing")))
    fraud = ROOT / "fraud" / "2026-11-01" / "reference.csv"
    with fraud.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["amount", "country", "merchant_category", "prediction", "confidence", "actual"]
        )
        for r in rows("fraud"):
            features = r["features"]
            assert isinstance(features, dict)
            probabilities = r["probabilities"]
            assert isinstance(probabilities, dict)
            writer.writerow(
                [
                    features["amount"],
                    features["country"],
                    features["merchant_category"],
                    r["prediction"],
                    probabilities[r["prediction"]],
                    r["actual"],
                ]
            )
    print(f"wrote {routing} and {fraud}")


if __name__ == "__main__":
    main()
