"""With a reference, a version's log lines are decoded against its features
(`records.typed_decoder`: features straight into a struct, no dict per line), and the
lines that decode rejects take the usual per-line path. Both paths must give identical
tallies, errors and windows on the same input, bad lines included, however the file is
cut into blocks, and across a restart in the middle of it."""

from __future__ import annotations

import functools
import json
import random
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from model_health_exporter.records import (
    _decode,
    features_dict,
    in_line_order,
    parse_lines,
    typed_decoder,
)
from model_health_exporter.sources.prediction_logs import LogTail
from model_health_exporter.state import ingest
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.ingest import IngestConfig, IngestWorker
from model_health_exporter.state.ingest import initial_error_keys as ingest_error_keys
from model_health_exporter.state.registry import (
    DROP_LIMITS,
    ModelRegistry,
    RegistryConfig,
    RootConfig,
    initial_error_keys,
)
from model_health_exporter.stats.reference import _columns
from tests.support import good_metrics, write_json

KEY = ("m", "v1")
CLASSES = ("a", "b", "c")
CATEGORIES = ("US", "DE", "FR", "JP")
NOW = 1_764_000_000.0


def features(rng: random.Random) -> dict[str, Any]:
    return {
        "num_a": round(rng.gauss(0, 1), 3),
        "num_b": rng.choice([1, 2, 3, 2.5, None]),
        "cat_c": rng.choice(CATEGORIES),
        "cat_d": rng.choice([*CATEGORIES, None]),
    }


def good_prediction(rng: random.Random, i: int) -> dict[str, Any]:
    weights = [rng.random() for _ in CLASSES]
    total = sum(weights)
    proba = {c: round(w / total, 4) for c, w in zip(CLASSES, weights, strict=True)}
    return {
        "id": f"r{i}",
        "prediction": max(proba, key=proba.__getitem__),
        "probabilities": proba,
        "latency_ms": round(rng.lognormvariate(3, 0.5), 1),
        "features": features(rng),
    }


# Lines the typed decode must leave to the per-line path, or that are bad for both.
ODD: list[bytes] = [
    b'{"id": "x1", "prediction": "a", "features": {"num_a": "high", "cat_c": "US"}}',
    b'{"id": "x2", "prediction": "a", "features": {"num_a": 1, "cat_c": 7}}',
    b'{"id": "x3", "prediction": "a", "features": {"num_a": true, "cat_c": false}}',
    b'{"id": "x4", "prediction": "a", "features": {"num_a": 1, "extra": "more"}}',
    b'{"id": "x5", "prediction": "a", "features": {"num_a": 1, "extra": {"deep": 1}}}',
    b'{"id": "x6", "prediction": "a", "features": {"num_a": 1e200}}',
    b'{"id": "x7", "prediction": "a", "features": {"num_a": 123456789012345678901234}}',
    b'{"id": "x8", "prediction": "a", "features": {"cat_c": "unseen-category"}}',
    b'{"id": "x9", "prediction": "a", "features": {}}',
    b'{"id": "x10", "prediction": "a", "features": null}',
    b'{"id": "x11", "prediction": "a"}',
    b'{"id": "x12", "prediction": "a", "features": [1, 2]}',
    b'{"id": "x13", "prediction": "a", "features": {"cat_c": "M\xc3\xbcnchen"}}',
    b'{"id": "x14", "prediction": "a", "features": {"cat_c": "\xff\xfe"}}',  # not UTF-8
    b'{"id": "x15", "prediction": "a", "features": {"num_a": NaN}}',
    b'{"id": "x16", "prediction": "a", "features": {"num_a": 1, "num_a": "dup"}}',
    b'{"prediction": \n',  # malformed JSON (the newline ends it)
    b"[1, 2, 3]",
    b'{"id": "x17", "features": {"num_a": 1}}',  # neither a prediction nor an error
    b'{"id": "x18", "prediction": "a", "latency_ms": -4, "features": {"num_a": 1}}',
    b'{"id": "x19", "prediction": "a", "latency_ms": "slow"}',
    b'{"id": "x20", "prediction": "d", "probabilities": {"a": 0.5, "b": 0.5}}',
    b'{"id": "x21", "prediction": null, "error": "Timeout", "features": {"num_a": 2}}',
    b'{"id": "x22", "prediction": 3.5, "features": {"num_a": 2}}',  # a regression output
    b'{"id": 23, "prediction": true, "confidence": 0.7, "features": {"cat_d": "FR"}}',
    b'{"id": "r5", "actual": "a"}',
    b'{"id": "r999999", "actual": "b"}',  # feedback before its prediction
    b'{"id": "r7", "actual": 1e400}',
    b'{"id": "r8", "actual": "c", "prediction": null}',
    b"   ",
    b"",
]


def random_log(seed: int, n: int) -> bytes:
    """Mostly good predictions, feedback for some (some before, most after their
    prediction), and the odd lines above scattered in."""
    rng = random.Random(seed)  # noqa: S311 - seeded test data
    lines: list[bytes] = []
    feedback: list[bytes] = []
    for i in range(n):
        if rng.random() < 0.08:
            lines.append(rng.choice(ODD))
        if rng.random() < 0.02:
            lines.append(json.dumps({"id": f"r{i}", "prediction": None, "error": "OOM"}).encode())
            continue
        record = good_prediction(rng, i)
        if rng.random() < 0.01:
            lines.append(json.dumps({"id": f"r{i}", "actual": rng.choice(CLASSES)}).encode())
        lines.append(json.dumps(record).encode())
        if rng.random() < 0.3:
            feedback.append(json.dumps({"id": f"r{i}", "actual": rng.choice(CLASSES)}).encode())
        if len(feedback) > 40 or rng.random() < 0.05:
            lines += feedback
            feedback = []
    lines += feedback
    return b"\n".join(lines) + b"\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    write_json(root / "m/v1/metrics.json", good_metrics())
    rng = random.Random(1)  # noqa: S311 - seeded test data
    reference = [good_prediction(rng, 10**6 + i) for i in range(500)]
    (root / "m/v1/reference.jsonl").write_text("\n".join(map(json.dumps, reference)) + "\n")
    (root / "m/v1/predictions").mkdir()
    (root / "m/v1/predictions/p.jsonl").write_bytes(random_log(7, 4000))
    return root


def make_worker(root: Path, state_dir: Path | None = None) -> tuple[IngestWorker, LabelledCounter]:
    errors = LabelledCounter(initial_error_keys() + ingest_error_keys())
    dropped = LabelledCounter((limit,) for limit in DROP_LIMITS)
    registry = ModelRegistry(RegistryConfig(roots=(RootConfig(root),)), errors, dropped)
    registry.full_scan()
    worker = IngestWorker(IngestConfig(state_dir=state_dir), lambda: registry.snapshot, errors)
    return worker, errors


def drain(worker: IngestWorker) -> None:
    while worker.poll_once(behind_only=False):
        pass


def state(worker: IngestWorker, errors: LabelledCounter) -> dict[str, Any]:
    return {
        "tallies": worker._tallies[KEY].to_dict(),
        "window": worker._windows[KEY].to_dict(),
        "errors": {k: v for k, v in errors.values().items() if v},
    }


def rounded(value: Any) -> Any:
    """Sums of floats to 12 digits: blocks cut elsewhere add them in another grouping."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v) for v in value]
    return value


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every record counted at the same moment, so that windows compare equal."""
    monkeypatch.setattr(time, "time", lambda: NOW)


def per_line_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest, "typed_decoder", lambda *schema: (_decode, None))


def small_blocks(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    monkeypatch.setattr(ingest, "LogTail", functools.partial(LogTail, max_bytes=size))


def test_the_typed_decode_takes_most_lines_and_leaves_the_odd_ones(root: Path) -> None:
    worker, _ = make_worker(root)
    drain(worker)
    reference = worker._windows[KEY].reference
    assert reference is not None
    assert reference.feature_schema() == (
        ("cat_c", False),
        ("cat_d", False),
        ("num_a", True),
        ("num_b", True),
    )
    decode, struct = typed_decoder(reference.feature_schema())
    lines = (root / "m/v1/predictions/p.jsonl").read_bytes().split(b"\n")
    typed = 0
    for data in lines:
        try:
            record = decode(data)
        except Exception:  # noqa: BLE001, S112 - rejected: the per-line path's
            continue
        typed += type(record.features) is struct
    assert typed > 0.6 * len(lines)
    # a string for a number, a number for a category, booleans, another feature, a
    # number beyond int64: the per-line path's (x5 and x6 are invalid records)
    records, rejected = parse_lines(ODD[:7], decode)
    assert [type(getattr(r, "features", None)) for r in records] == [dict] * 5
    assert [(i, e.reason) for i, e in rejected] == [(4, "invalid_record"), (5, "invalid_number")]


def test_both_paths_give_identical_tallies_including_bad_lines(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, errors = make_worker(root)
    drain(worker)
    typed = state(worker, errors)
    per_line_only(monkeypatch)
    worker, errors = make_worker(root)
    drain(worker)
    assert state(worker, errors) == typed
    # the odd lines were there and counted as the rules say
    assert typed["errors"][("prediction_log", "invalid_json")] > 0
    assert typed["errors"][("prediction_log", "invalid_record")] > 0
    assert typed["errors"][("prediction_log", "invalid_latency")] > 0
    drift = [b["drift"] for b in typed["window"]["buckets"] if b["drift"]]
    assert drift and sum(d["rows"] for d in drift) > 3000
    assert sum(sum(d["invalid_type"]) for d in drift) > 0
    assert sum(sum(d["unseen"]) for d in drift) > 0


@pytest.mark.parametrize("size", [4096, 50_000])
def test_blocks_cut_mid_file_give_the_same_tallies(
    root: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    worker, errors = make_worker(root)
    drain(worker)
    whole = state(worker, errors)
    small_blocks(monkeypatch, size)
    worker, errors = make_worker(root)
    drain(worker)
    assert rounded(state(worker, errors)) == rounded(whole)


def test_a_restart_in_the_middle_counts_every_line_once(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, errors = make_worker(root)
    drain(worker)
    whole = state(worker, errors)
    small_blocks(monkeypatch, 20_000)
    first, first_errors = make_worker(root, tmp_path / "state")
    first.poll_once()
    for _ in range(3):
        first.poll_once(behind_only=True)
    assert first.behind  # stopped part way through the file
    assert first.save_checkpoint()
    # what happened after the checkpoint is lost, as with kill -9
    first.poll_once(behind_only=True)
    second, second_errors = make_worker(root, tmp_path / "state")
    drain(second)
    restarted = state(second, second_errors)
    # error counters are process-wide (not checkpointed): add the first run's
    counted = dict(first_errors.values())
    restarted["errors"] = {}
    assert rounded(restarted["tallies"]) == rounded(whole["tallies"])
    assert rounded(restarted["window"]) == rounded(whole["window"])
    assert counted  # the first run counted some bad lines before the restart


def plain(parsed: tuple[list[Any], list[tuple[int, Any]]]) -> Any:
    """Records and errors as plain values (features as a dict, whichever struct)."""
    records, rejected = parsed
    out = []
    for r in records:
        fields = msgspec.structs.asdict(r)
        if "features" in fields:
            fields["features"] = features_dict(fields["features"])
        out.append((type(r).__name__, fields))
    return out, [(i, e.reason, e.message) for i, e in rejected]


def test_the_references_categories_decode_to_its_own_strings_and_others_fall_back(
    root: Path,
) -> None:
    """Categorical features are first decoded against the reference's categories (each
    value then is the reference's own string object); a line with another category
    takes the decoder of any string, and a block with many such lines goes on with
    that one: either way the same records and errors as without the categories."""
    worker, _ = make_worker(root)
    drain(worker)
    reference = worker._windows[KEY].reference
    assert reference is not None
    schema = reference.feature_schema()
    categories = tuple(
        None if numeric else reference.known_categories.get(name) for name, numeric in schema
    )
    assert categories[0] == tuple(sorted(CATEGORIES))
    literal, _ = typed_decoder(schema, categories)
    any_string, _ = typed_decoder(schema)
    rng = random.Random(3)  # noqa: S311 - seeded test data
    for share_new in (0.0, 0.05, 0.5):
        lines = []
        for i in range(400):
            record = good_prediction(rng, i)
            if rng.random() < share_new:
                record["features"]["cat_c"] = f"new-{i % 7}"
            lines.append(json.dumps(record).encode())
        lines[100:100] = ODD
        assert plain(parse_lines(lines, literal, any_string)) == plain(
            parse_lines(lines, any_string)
        )
    known = literal(json.dumps(good_prediction(rng, 0)).encode())
    assert known.features is not None
    value = msgspec.structs.astuple(known.features)[0]
    assert value in CATEGORIES
    assert any(value is c for c in categories[0])  # the reference's object, not a copy


def test_features_are_decoded_in_the_order_the_lines_write_them(root: Path) -> None:
    """The typed struct's fields follow the lines' key order (msgspec finds each key
    where it looks first); the drift tally still reads them as the reference's columns,
    without a type check per value."""
    worker, _ = make_worker(root)
    drain(worker)
    reference = worker._windows[KEY].reference
    assert reference is not None
    lines = (root / "m/v1/predictions/p.jsonl").read_bytes().split(b"\n")
    schema = in_line_order(reference.feature_schema(), lines)
    assert schema == (("num_a", True), ("num_b", True), ("cat_c", False), ("cat_d", False))
    assert in_line_order(reference.feature_schema(), [b'{"id": "1", "actual": "a"}']) is None
    decode, struct = typed_decoder(schema)
    assert worker._decoder_cache[KEY][2] is decode  # the any-string decoder, in line order
    records, _ = parse_lines(lines[:300], decode)
    rows = [f for r in records if type(f := getattr(r, "features", None)) is struct]
    assert len(rows) > 100
    names = list(reference.features)
    columns, typed = _columns(rows, names)
    assert typed
    as_dicts = [features_dict(f) or {} for f in rows]
    assert columns == [tuple(d.get(name) for d in as_dicts) for name in names]
