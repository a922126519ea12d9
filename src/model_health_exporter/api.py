"""Python API for training code: write and read a model version's metrics.json.

from model_health_exporter import save_model_metrics
save_model_metrics(Path("models/fraud/v3"), {"accuracy": 0.92, ...})
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from model_health_exporter.fsutil import atomic_write_bytes, read_capped
from model_health_exporter.schema import (
    METRICS_FILE,
    InvalidFileError,
    ModelMetrics,
    describe_validation_error,
    parse_metrics,
)

_MAX_BYTES = 64 * 1024 * 1024


def save_model_metrics(
    model_dir: Path | str, metrics: dict[str, Any], overwrite: bool = False
) -> Path:
    """Validate `metrics` and write them to `<model_dir>/metrics.json` atomically
    (temporary file, fsync, rename), so the exporter never reads a partial file.

    `generated_at` is set to now (UTC) when missing. Raises ValueError if the metrics
    are invalid and FileExistsError if the file exists and `overwrite` is false.
    Returns the path written.
    """
    model_dir = Path(model_dir)
    path = model_dir / METRICS_FILE
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    payload = dict(metrics)
    payload.setdefault("generated_at", datetime.now(UTC).isoformat())
    try:
        ModelMetrics.model_validate(payload)
    except ValidationError as exc:
        raise ValueError(f"invalid metrics: {describe_validation_error(exc)[1]}") from None
    data = json.dumps(payload, indent=2, sort_keys=True, allow_nan=False).encode() + b"\n"
    model_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path


def load_model_metrics(model_dir: Path | str) -> dict[str, Any]:
    """Read and validate `<model_dir>/metrics.json`; returns it as a dict (unknown keys
    kept). Raises FileNotFoundError if missing and ValueError if invalid."""
    path = Path(model_dir) / METRICS_FILE
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        parsed = parse_metrics(read_capped(path, _MAX_BYTES))
    except InvalidFileError as exc:
        raise ValueError(f"{path}: {exc.message}") from None
    return parsed.model_dump(mode="json", exclude_none=True)
