"""The checkpoint's format: closed buckets saved as their packed bytes (format 2), and a
checkpoint written by the code of format 1 (every bucket as JSON numbers) still loading,
the windows of both saying what they said before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from model_health_exporter.fsutil import atomic_write_chunks
from model_health_exporter.state import ingest as ingest_module
from model_health_exporter.state.ingest import (
    CHECKPOINT_FILE,
    CHECKPOINT_FORMAT,
    IngestConfig,
    IngestWorker,
)
from model_health_exporter.state.windows import LiveWindow, WindowSummary, _ClosedBucket
from tests.support import good_metrics, write_json
from tests.unit.test_ingest_batches import KEY, line, make_worker

DATA = Path(__file__).parent / "data"
# Written by the code of format 1 (save_checkpoint): one version whose window holds 8
# buckets of predictions with a reference, feedback joined to half of them, and its log's
# read position (one line). The summary is what that window said when it was saved.
FORMAT_1 = DATA / "checkpoint_format1.json"
FORMAT_1_SUMMARY = json.loads((DATA / "checkpoint_format1_summary.json").read_text())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    (root / "m/v1/predictions").mkdir(parents=True)
    write_json(root / "m/v1/metrics.json", good_metrics())
    (root / "m/v1/predictions/p.jsonl").write_bytes(
        line({"id": "x1", "prediction": "yes", "confidence": 0.9})
    )
    return root


def _said(summary: WindowSummary) -> dict[str, Any]:
    return {
        "metrics": dict(summary.metrics),
        "samples": dict(summary.samples),
        "features": {k: dict(v) for k, v in summary.features.items()},
    }


def _check_summary(window: LiveWindow) -> None:
    summary = window.summary(FORMAT_1_SUMMARY["now"])
    assert summary.short is not None
    assert _said(summary) == FORMAT_1_SUMMARY["window"]
    assert _said(summary.short) == FORMAT_1_SUMMARY["short"]


def _fixture_window() -> dict[str, Any]:
    window: dict[str, Any] = json.loads(FORMAT_1.read_bytes())["windows"]["m/v1"]
    return window


def _loaded(saved: dict[str, Any]) -> LiveWindow:
    window = LiveWindow(IngestConfig(state_dir=None).window)
    window.load(json.loads(json.dumps(saved)))  # as read from the file
    return window


def _state_from_format_1(tmp_path: Path) -> Path:
    """A state directory holding the format-1 checkpoint fixture."""
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(FORMAT_1, state / CHECKPOINT_FILE)
    return state


def test_a_format_1_window_says_what_it_said() -> None:
    saved = _fixture_window()
    assert "layouts" not in saved and all("packed" not in b for b in saved["buckets"])
    _check_summary(_loaded(saved))


def test_a_format_2_window_round_trip_is_bit_identical() -> None:
    old_form = _fixture_window()
    window = _loaded(old_form)
    saved = window.to_dict()
    assert [("packed" in b) for b in saved["buckets"]] == [True] * 7 + [False]
    shapes = {b.layout for b in window._buckets if isinstance(b, _ClosedBucket)}
    assert len(saved["layouts"]) == len(shapes) == 2  # each shape saved once
    for old, new in zip(old_form["buckets"][:-1], saved["buckets"][:-1], strict=True):
        assert new["labelled"] == old["labelled"]  # saved as before
        others = {k: v for k, v in new.items() if k != "labelled"}
        assert len(json.dumps(others)) < len(json.dumps(old)) - len(json.dumps(old["labelled"]))
    twin = _loaded(saved)
    for old, new in zip(list(window._buckets)[:-1], list(twin._buckets)[:-1], strict=True):
        assert isinstance(old, _ClosedBucket) and isinstance(new, _ClosedBucket)
        assert new.data == old.data and new.layout is old.layout
        assert new.index == old.index
        assert new.labelled is not None and old.labelled is not None
        assert new.labelled.to_dict() == old.labelled.to_dict()
        assert new.labelled.confusion.dtype == old.labelled.confusion.dtype
    assert twin.to_dict() == saved
    _check_summary(twin)


def _restored(root: Path, state: Path) -> IngestWorker:
    worker, _ = make_worker(root, state_dir=state)
    return worker


def test_a_format_1_checkpoint_loads(root: Path, tmp_path: Path) -> None:
    state = _state_from_format_1(tmp_path)
    worker = _restored(root, state)
    # the line read before the save is not counted again
    assert worker.poll_once() == 0
    assert worker.tallies[KEY].predictions == 1
    window = worker._windows[KEY]
    assert len(window._buckets) == 8
    assert all(isinstance(b, _ClosedBucket) for b in list(window._buckets)[:-1])


def test_a_format_2_checkpoint_saves_closed_buckets_packed_and_restores_them(
    root: Path, tmp_path: Path
) -> None:
    state = _state_from_format_1(tmp_path)
    worker = _restored(root, state)
    before = list(worker._windows[KEY]._buckets)
    assert worker.save_checkpoint()
    saved = json.loads((state / CHECKPOINT_FILE).read_bytes())
    assert saved["format"] == CHECKPOINT_FORMAT == 2
    buckets = saved["windows"]["m/v1"]["buckets"]
    assert [("packed" in b) for b in buckets] == [True] * 7 + [False]  # the newest: numbers

    again = _restored(root, state)
    after = list(again._windows[KEY]._buckets)
    for old, new in zip(before[:-1], after[:-1], strict=True):
        assert isinstance(old, _ClosedBucket) and isinstance(new, _ClosedBucket)
        assert new.data == old.data and new.layout is old.layout
    # saved again, the same content
    assert again.save_checkpoint()
    resaved = json.loads((state / CHECKPOINT_FILE).read_bytes())
    assert resaved["windows"] == saved["windows"]
    assert again.poll_once() == 0 and again.tallies[KEY].predictions == 1


def _cut_bytes(window: dict[str, Any]) -> None:
    bucket = window["buckets"][0]
    bucket["packed"][1] = bucket["packed"][1][:-8]


def _no_such_layout(window: dict[str, Any]) -> None:
    window["buckets"][0]["packed"][0] = 5


def _not_base64(window: dict[str, Any]) -> None:
    window["buckets"][0]["packed"][1] = "not base64!"


def _other_bins(window: dict[str, Any]) -> None:
    window["layouts"][0][2][0] += 1


def _bad_layout(window: dict[str, Any]) -> None:
    window["layouts"][0][1] = "float32"


def _newest_closed(window: dict[str, Any]) -> None:
    window["buckets"][-1] = window["buckets"][0]


@pytest.mark.parametrize(
    "change", [_cut_bytes, _no_such_layout, _not_base64, _other_bins, _bad_layout, _newest_closed]
)
def test_a_damaged_packed_bucket_is_refused(change: Any) -> None:
    saved = _loaded(_fixture_window()).to_dict()
    change(saved)
    with pytest.raises((ValueError, TypeError), match=r"packed|newest|base64|[Ii]ncorrect"):
        _loaded(saved)


def test_a_damaged_window_restarts_empty_and_nothing_is_counted_again(
    root: Path, tmp_path: Path
) -> None:
    state = _state_from_format_1(tmp_path)
    assert _restored(root, state).save_checkpoint()
    path = state / CHECKPOINT_FILE
    saved = json.loads(path.read_bytes())
    _cut_bytes(saved["windows"]["m/v1"])
    path.write_text(json.dumps(saved))
    worker = _restored(root, state)
    assert not worker._windows[KEY]._buckets  # not restored: it starts empty
    assert worker.poll_once() == 0  # positions and counters are kept
    assert worker.tallies[KEY].predictions == 1


def test_a_failing_chunk_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_bytes(b"old")

    def chunks() -> Any:
        yield b"new part"
        raise RuntimeError("encoding failed")

    with pytest.raises(RuntimeError, match="encoding failed"):
        atomic_write_chunks(path, chunks())
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    atomic_write_chunks(path, iter([b"a", b"", b"bc"]))
    assert path.read_bytes() == b"abc"


def test_the_checkpoint_is_written_a_window_at_a_time(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never the whole file as one object: each window's JSON is written as it is made."""
    (root / "m/v2/predictions").mkdir(parents=True)
    write_json(root / "m/v2/metrics.json", good_metrics())
    (root / "m/v2/predictions/p.jsonl").write_bytes(
        line({"id": "y1", "prediction": "no", "confidence": 0.6})
    )
    state = tmp_path / "state"
    worker = _restored(root, state)
    assert worker.poll_once() == 2
    written: list[bytes] = []

    def recording(path: Path, chunks: Any) -> None:
        def passing() -> Any:
            for chunk in chunks:
                written.append(chunk)
                yield chunk

        atomic_write_chunks(path, passing())

    monkeypatch.setattr(ingest_module, "atomic_write_chunks", recording)
    assert worker.save_checkpoint()
    whole = (state / CHECKPOINT_FILE).read_bytes()
    assert b"".join(written) == whole
    windows = json.loads(whole)["windows"]
    assert sorted(windows) == ["m/v1", "m/v2"]
    # the header, a key and a window for each version, the closing braces
    assert len(written) == 1 + 2 * len(windows) + 1
    assert max(map(len, written)) < len(whole) / 2
