"""Prediction-log ingestion: throughput on one core, memory over 10M records, and
scrape latency while ingesting flat out (issue 3's targets).

1. Throughput, in-process. A deterministic predictions file of RECORDS classification
   records (3-class probabilities, 8 features, latency_ms, ~1% failed predictions) and a
   feedback file for ~30% of the ids, in a one-version model tree. A real ModelRegistry
   (after full_scan) and IngestWorker (with a state_dir) ingest them: `poll_once()` in a
   loop until it reads nothing, timed. Reference, in the same process on the same files:
   read each file, split its lines, `orjson.loads` each line. Reported: lines/s of both
   and ours / orjson (target >= 0.5). Diagnostic rows: `records.parse_line` alone, and a
   "joined" layout where the same feedback lines follow their predictions in the
   predictions file (a documented layout) so that every feedback line is joined; with a
   separate feedback file read whole, the feedback runs ahead of the predictions and is
   mostly unmatched. `--profile` adds a cProfile run (top functions by own time).
2. Memory, in a child process (so that part 1 leaves nothing behind): CHUNK records
   (plus feedback) are appended at a time, polled until drained, the logs rotated by
   rename (the consumed older rotation deleted) and a checkpoint saved; VmRSS from
   /proc/self/status after gc.collect() after each chunk. Target: RSS at 10M within 10%
   of RSS at 1M.
3. Scrape latency under load: the daemon as a subprocess on 127.0.0.1 (MODELS x VERSIONS
   tree, --logs.poll-interval=0.05, a --state.dir), ACTIVE_VERSIONS active versions
   receiving records from a writer process that appends as fast as the daemon reads
   (it keeps a bounded backlog ahead of the ingested count), while full /metrics scrapes
   are timed. Reported: median/p99 scrape latency (target p99 < 100 ms), the same idle
   before the writer starts, and the ingestion rate from routing_ml_predictions_total.

    .venv/bin/python bench/ingest_throughput.py [--records 1000000]
        [--memory-records 10000000 --memory-chunk 1000000] [--duration 30 --scrapes 300]
        [--parts throughput memory scrape] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import multiprocessing as mp
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from _harness import (
    Daemon,
    SourceGuard,
    build_tree,
    machine,
    summary_ms,
    table,
    timed_get,
    write_results,
)
from model_health_exporter.records import Feedback, Prediction, parse_line
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.ingest import IngestConfig, IngestWorker
from model_health_exporter.state.ingest import initial_error_keys as ingest_error_keys
from model_health_exporter.state.live import TalliesView, VersionTallies
from model_health_exporter.state.registry import (
    DROP_LIMITS,
    ModelRegistry,
    RegistryConfig,
    RootConfig,
    initial_error_keys,
)
from model_health_exporter.state.windows import LiveWindow, WindowConfig
from model_health_exporter.stats import performance as perf

NAME = "ingest_throughput"
TARGET_RATIO = 0.5  # ours / orjson.loads alone
TARGET_RSS_GROWTH = 0.10  # RSS at the last chunk vs after the first
TARGET_P99_MS = 100.0

CLASSES = ("P100", "P200", "P300")
ERROR_TYPES = ("Timeout", "ValueError", "ModelNotLoaded")
ITEMS = tuple(f"I{i}" for i in range(400))
PROCS = tuple(f"PR{i}" for i in range(60))
MACHINES = tuple(f"M{i:02d}" for i in range(40))
SHIFTS = ("A", "B", "C")
MATERIALS = ("steel", "aluminium", "plastic", "copper", "brass")
ERROR_RATE = 0.01
FEEDBACK_RATE = 0.30
CORRECT_RATE = 0.85
BATCH = 2000  # records per generated batch; < max_pending, so a one-batch lag joins
MODEL, VERSION = "model-000", "v01"


# ---- deterministic records ----------------------------------------------------------------


def _timestamp(i: int) -> str:
    """RFC 3339, one record per millisecond from 2026-11-22T00:00:00Z."""
    seconds, ms = divmod(i, 1000)
    minutes, s = divmod(seconds, 60)
    hours, m = divmod(minutes, 60)
    days, h = divmod(hours, 24)
    return f"2026-11-{22 + days % 7:02d}T{h:02d}:{m:02d}:{s:02d}.{ms:03d}Z"


def make_batch(seed: int, start: int, count: int) -> tuple[bytes, bytes, int]:
    """Records start..start+count-1: (prediction lines, feedback lines, feedback count).
    The content depends only on (seed, start, count)."""
    rng = random.Random(f"{seed}:{start}:{count}")
    rand, choice, randrange = rng.random, rng.choice, rng.randrange
    dumps = orjson.dumps
    predictions: list[bytes] = []
    feedback: list[bytes] = []
    for i in range(start, start + count):
        rid = f"req-{i:010d}"
        features = {
            "ITEM_CD": choice(ITEMS),
            "PROC_CD": choice(PROCS),
            "DURATION_MIN": None if rand() < 0.02 else round(rand() * 240, 1),
            "MACHINE_ID": choice(MACHINES),
            "SHIFT": choice(SHIFTS),
            "QTY": randrange(1, 500),
            "MATERIAL": choice(MATERIALS),
            "PRIORITY": randrange(1, 6),
        }
        latency = round(rng.lognormvariate(3.0, 0.5), 1)
        if rand() < ERROR_RATE:
            record: dict[str, Any] = {
                "timestamp": _timestamp(i),
                "id": rid,
                "features": features,
                "prediction": None,
                "latency_ms": latency,
                "error": choice(ERROR_TYPES),
            }
            predictions.append(dumps(record))
            continue
        weights = [rand(), rand(), rand()]
        winner = randrange(3)
        weights[winner] += 1.0 + rand() * 2.0
        total = sum(weights)
        probabilities = {c: round(w / total, 4) for c, w in zip(CLASSES, weights, strict=True)}
        label = CLASSES[winner]
        record = {
            "timestamp": _timestamp(i),
            "id": rid,
            "features": features,
            "prediction": label,
            "probabilities": probabilities,
            "latency_ms": latency,
            "error": None,
        }
        predictions.append(dumps(record))
        if rand() < FEEDBACK_RATE:
            actual = label if rand() < CORRECT_RATE else choice(CLASSES)
            feedback.append(dumps({"id": rid, "actual": actual}))
    pred = b"\n".join(predictions) + b"\n"
    fb = b"\n".join(feedback) + b"\n" if feedback else b""
    return pred, fb, len(feedback)


def write_logs(
    predictions: Path, feedback: Path | None, seed: int, start: int, count: int
) -> tuple[int, int]:
    """Append records start.. to `predictions` and their feedback to `feedback`, or, if
    it is None, into `predictions` one batch after their predictions (so that a reader
    going through the file finds each prediction still waiting). Returns (prediction
    lines, feedback lines) written."""
    n_feedback = 0
    lagging = b""
    with predictions.open("ab") as pf, (feedback or Path(os.devnull)).open("ab") as ff:
        for batch_start in range(start, start + count, BATCH):
            n = min(BATCH, start + count - batch_start)
            pred, fb, n_fb = make_batch(seed, batch_start, n)
            n_feedback += n_fb
            if feedback is None:
                pf.write(pred + lagging)
                lagging = fb
            else:
                pf.write(pred)
                ff.write(fb)
        if feedback is None:
            pf.write(lagging)
    return count, n_feedback


# ---- in-process ingestion -----------------------------------------------------------------


def model_tree(root: Path, seed: int) -> Path:
    """One model with one version, with predictions/ and feedback/ folders; returns the
    version's folder."""
    build_tree(root, 1, 1, seed)
    version_dir = root / MODEL / VERSION
    (version_dir / "predictions").mkdir()
    (version_dir / "feedback").mkdir()
    return version_dir


def make_worker(root: Path, state_dir: Path) -> tuple[IngestWorker, LabelledCounter]:
    """The real registry and ingest worker as daemon.py wires them (default settings)."""
    errors = LabelledCounter(initial_error_keys() + ingest_error_keys())
    dropped = LabelledCounter((limit,) for limit in DROP_LIMITS)
    registry = ModelRegistry(RegistryConfig(roots=(RootConfig(root),)), errors, dropped)
    registry.full_scan()
    worker = IngestWorker(IngestConfig(state_dir=state_dir), lambda: registry.snapshot, errors)
    return worker, errors


def drain(worker: IngestWorker) -> tuple[float, int, int]:
    """poll_once() until it reads nothing: (seconds, lines, polls)."""
    lines = polls = 0
    start = time.perf_counter()
    while True:
        polls += 1
        n = worker.poll_once()
        if not n:
            break
        lines += n
    return time.perf_counter() - start, lines, polls


def tally_facts(worker: IngestWorker, errors: LabelledCounter) -> dict[str, Any]:
    view = worker.tallies[(MODEL, VERSION)]
    return {
        "predictions": view.predictions,
        "feedback": view.feedback,
        "errors": dict(view.errors),
        "feedback_matched": view.feedback_matched,
        "feedback_unmatched": view.feedback_unmatched,
        "feedback_expired": view.feedback_expired,
        "window_metrics": dict(view.window.metrics),
        "line_errors": {
            reason: n
            for (source, reason), n in errors.values().items()
            if source == "prediction_log" and n
        },
    }


def ingest_run(root: Path, work: Path, tag: str) -> dict[str, Any]:
    state = work / f"state-{tag}"
    worker, errors = make_worker(root, state)
    seconds, lines, polls = drain(worker)
    start = time.perf_counter()
    worker.save_checkpoint()
    checkpoint_s = time.perf_counter() - start
    facts = tally_facts(worker, errors)
    shutil.rmtree(state, ignore_errors=True)
    return {
        "seconds": seconds,
        "lines": lines,
        "polls": polls,
        "checkpoint_s": checkpoint_s,
        **facts,
    }


def orjson_reference(paths: list[Path]) -> tuple[float, int]:
    """Read each file, split it into lines, orjson.loads every line."""
    loads = orjson.loads
    n = 0
    start = time.perf_counter()
    for path in paths:
        for line in path.read_bytes().splitlines():
            loads(line)
            n += 1
    return time.perf_counter() - start, n


def parse_line_reference(paths: list[Path]) -> tuple[float, int]:
    """The same with records.parse_line (orjson.loads plus the record checks)."""
    n = 0
    start = time.perf_counter()
    for path in paths:
        for line in path.read_bytes().splitlines():
            parse_line(line)
            n += 1
    return time.perf_counter() - start, n


def profile_run(root: Path, work: Path, top: int) -> list[dict[str, Any]]:
    worker, _ = make_worker(root, work / "state-profile")
    profiler = cProfile.Profile()
    profiler.enable()
    drain(worker)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    rows = []
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _) in sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda item: item[1][2],
        reverse=True,
    )[:top]:
        where = filename.split("/src/")[-1] if "/src/" in filename else Path(filename).name
        rows.append(
            {
                "function": f"{where}:{line}({func})",
                "calls": ncalls,
                "own_s": tottime,
                "own_share": tottime / total,
                "cumulative_s": cumtime,
            }
        )
    return rows


def _per_call_us(fn: Callable[[], tuple[int, float]]) -> float:
    """Microseconds per item, best of three; `fn()` returns (items, seconds taken)."""
    best = math.inf
    for _ in range(3):
        n, seconds = fn()
        best = min(best, seconds / n * 1e6)
    return best


def stage_costs(seed: int, n: int = 4000) -> dict[str, float]:
    """What one line costs in each stage of IngestWorker._tally, in microseconds, timed
    without a profiler on records of the benchmark (n < max_pending, so all feedback is
    joined)."""
    pred_data, fb_data, _ = make_batch(seed, 0, n)
    pred_lines, fb_lines = pred_data.splitlines(), fb_data.splitlines()
    preds = [r for r in map(parse_line, pred_lines) if isinstance(r, Prediction)]
    fbs = [r for r in map(parse_line, fb_lines) if isinstance(r, Feedback)]
    ok = [p for p in preds if p.error is None and p.confidence is not None]
    now = time.time()

    def loads(lines: list[bytes]) -> Callable[[], tuple[int, float]]:
        def run() -> tuple[int, float]:
            start = time.perf_counter()
            for line in lines:
                orjson.loads(line)
            return len(lines), time.perf_counter() - start

        return run

    def parse(lines: list[bytes]) -> Callable[[], tuple[int, float]]:
        def run() -> tuple[int, float]:
            start = time.perf_counter()
            for line in lines:
                parse_line(line)
            return len(lines), time.perf_counter() - start

        return run

    # As IngestWorker._tally_records hands them on: a chunk's predictions in one batch.
    def tallies() -> tuple[int, float]:
        t = VersionTallies.create()
        start = time.perf_counter()
        t.observe_predictions(preds)
        return len(preds), time.perf_counter() - start

    def confidence_add() -> tuple[int, float]:
        h = perf.ConfidenceHistogram.empty()
        confidences = [p.confidence for p in ok if p.confidence is not None]
        start = time.perf_counter()
        h.add_many(confidences)
        return len(ok), time.perf_counter() - start

    def observe_prediction() -> tuple[int, float]:
        w = LiveWindow(WindowConfig())
        start = time.perf_counter()
        w.observe_predictions(preds, now)
        w.summary(now)  # what is left in the batches (drift rows, confidences) is flushed
        return len(preds), time.perf_counter() - start

    def observe_feedback() -> tuple[int, float]:
        w = LiveWindow(WindowConfig())
        w.observe_predictions(preds, now)
        start = time.perf_counter()
        w.observe_feedbacks(fbs, now)
        elapsed = time.perf_counter() - start
        if w.matched != len(fbs):
            raise RuntimeError(f"joined {w.matched} of {len(fbs)}")
        return len(fbs), elapsed

    window = LiveWindow(WindowConfig())
    window.observe_predictions(preds, now)
    window.observe_feedbacks(fbs, now)
    filled = VersionTallies.create()

    def publish_view() -> tuple[int, float]:
        start = time.perf_counter()
        for _ in range(20):
            TalliesView.of((MODEL, VERSION), filled, window, now)
        return 20, time.perf_counter() - start

    return {
        "orjson_loads_prediction": _per_call_us(loads(pred_lines)),
        "orjson_loads_feedback": _per_call_us(loads(fb_lines)),
        "parse_line_prediction": _per_call_us(parse(pred_lines)),
        "parse_line_feedback": _per_call_us(parse(fb_lines)),
        "tallies_counters_histograms": _per_call_us(tallies),
        "window_observe_prediction": _per_call_us(observe_prediction),
        "of_which_confidence_histogram_add": _per_call_us(confidence_add),
        "window_observe_feedback_joined": _per_call_us(observe_feedback),
        "tallies_view_per_poll": _per_call_us(publish_view),
    }


def measure_throughput(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    layouts: dict[str, dict[str, Any]] = {}
    for layout in ("feedback_file", "joined"):
        root = work / f"throughput-{layout}"
        version_dir = model_tree(root, args.seed)
        predictions = version_dir / "predictions" / "predictions.jsonl"
        feedback = (
            version_dir / "feedback" / "feedback.jsonl" if layout == "feedback_file" else None
        )
        start = time.perf_counter()
        n_pred, n_fb = write_logs(predictions, feedback, args.seed, 0, args.records)
        generate_s = time.perf_counter() - start
        paths = [predictions] if feedback is None else [predictions, feedback]
        size = sum(p.stat().st_size for p in paths)
        print(
            f"  {layout}: {n_pred} predictions + {n_fb} feedback lines, {size / 1e6:.0f} MB "
            f"in {generate_s:.0f} s",
            file=sys.stderr,
        )
        ours, reference, parsed = [], [], []
        for repeat in range(args.repeats):  # interleaved, so drifts hit all three alike
            ours.append(ingest_run(root, work, f"{layout}-{repeat}"))
            reference.append(orjson_reference(paths))
            parsed.append(parse_line_reference(paths))
        lines = n_pred + n_fb
        for run in ours:
            if run["lines"] != lines or run["predictions"] != n_pred or run["feedback"] != n_fb:
                raise RuntimeError(f"ingested {run['lines']} lines of {lines}: {run}")
        ours_s = statistics.median(r["seconds"] for r in ours)
        ref_s = statistics.median(s for s, _ in reference)
        parse_s = statistics.median(s for s, _ in parsed)
        pred_only_s, _ = orjson_reference([predictions]) if feedback is not None else (None, 0)
        layouts[layout] = {
            "prediction_lines": n_pred,
            "feedback_lines": n_fb,
            "lines": lines,
            "bytes": size,
            "generate_s": generate_s,
            "ours_runs": ours,
            "ours_s": ours_s,
            "ours_lines_per_s": lines / ours_s,
            "orjson_s_runs": [s for s, _ in reference],
            "orjson_s": ref_s,
            "orjson_lines_per_s": lines / ref_s,
            "orjson_prediction_lines_per_s": None if pred_only_s is None else n_pred / pred_only_s,
            "parse_line_s_runs": [s for s, _ in parsed],
            "parse_line_s": parse_s,
            "parse_line_lines_per_s": lines / parse_s,
            "ratio": ref_s / ours_s,
            "ratio_parse_line": ref_s / parse_s,
        }
        if args.profile and layout == "feedback_file":
            layouts[layout]["profile_top"] = profile_run(root, work, args.profile_top)
        shutil.rmtree(root)
    return {
        "layouts": layouts,
        "stage_us_per_line": stage_costs(args.seed),
        "target_ratio": TARGET_RATIO,
        "target_met": all(v["ratio"] >= TARGET_RATIO for v in layouts.values()),
    }


# ---- memory (child process) ---------------------------------------------------------------


def proc_self_status() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0]) * 1024
    return out


def rotate(path: Path) -> None:
    """Rename rotation: path -> path.1, the consumed older path.1 deleted first."""
    old = path.with_name(path.name + ".1")
    old.unlink(missing_ok=True)
    if path.exists():
        path.rename(old)


def memory_child(total: int, chunk: int, seed: int, work: Path) -> dict[str, Any]:
    root = work / "memory"
    version_dir = model_tree(root, seed)
    predictions = version_dir / "predictions" / "predictions.jsonl"
    feedback = version_dir / "feedback" / "feedback.jsonl"
    state = work / "state-memory"
    worker, errors = make_worker(root, state)
    worker.poll_once()
    gc.collect()
    points = [{"records": 0, **proc_self_status(), "ingest_s": 0.0, "generate_s": 0.0}]
    done = 0
    while done < total:
        n = min(chunk, total - done)
        start = time.perf_counter()
        _, n_fb = write_logs(predictions, feedback, seed, done, n)
        generate_s = time.perf_counter() - start
        seconds, lines, polls = drain(worker)
        if lines != n + n_fb:
            raise RuntimeError(f"chunk at {done}: read {lines} lines of {n + n_fb}")
        done += n
        worker.save_checkpoint()
        rotate(predictions)
        rotate(feedback)
        worker.poll_once()  # sees the rotation
        gc.collect()
        points.append(
            {
                "records": done,
                **proc_self_status(),
                "ingest_s": seconds,
                "generate_s": generate_s,
                "lines_per_s": lines / seconds,
                "polls": polls,
                "checkpoint_bytes": (state / "checkpoint.json").stat().st_size,
                "positions": sum(len(t.positions) for t in worker._tails.values()),
            }
        )
        print(
            f"  memory: {done} records, VmRSS {points[-1]['VmRSS'] / 2**20:.1f} MiB",
            file=sys.stderr,
            flush=True,
        )
    return {"points": points, **tally_facts(worker, errors)}


def measure_memory(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--memory-child",
        f"--memory-records={args.memory_records}",
        f"--memory-chunk={args.memory_chunk}",
        f"--seed={args.seed}",
        f"--workdir={work}",
    ]
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, check=True)
    result = json.loads(done.stdout)
    points = result["points"]
    first = next(p for p in points if p["records"] >= args.memory_chunk)
    last = points[-1]
    growth = last["VmRSS"] / first["VmRSS"] - 1
    return {
        **result,
        "seconds": time.perf_counter() - start,
        "rss_first_chunk_bytes": first["VmRSS"],
        "rss_last_bytes": last["VmRSS"],
        "rss_growth": growth,
        "target_growth": TARGET_RSS_GROWTH,
        "target_met": growth <= TARGET_RSS_GROWTH,
    }


# ---- scrape latency under load ------------------------------------------------------------


def writer_process(
    dirs: list[str],
    *,
    seed: int,
    stop: Any,
    written: Any,
    ingested: Any,
    backlog: int,
    batch: int,
) -> None:
    """Appends batches of records round-robin to each directory's predictions file,
    feedback one batch after its predictions, keeping at most `backlog` records ahead of
    what the daemon has counted (`ingested`, updated by the scraper)."""
    lagging = dict.fromkeys(dirs, b"")
    i = 0
    with ExitStack() as stack:
        files = {
            d: stack.enter_context(Path(d, "predictions", "predictions.jsonl").open("ab"))
            for d in dirs
        }
        while not stop.is_set():
            if i - ingested.value >= backlog:
                time.sleep(0.002)
                continue
            for d in dirs:
                pred, fb, _ = make_batch(seed, i, batch)
                files[d].write(pred + lagging[d])
                files[d].flush()
                lagging[d] = fb
                i += batch
            written.value = i


def sum_samples(body: bytes, prefix: bytes) -> float:
    total = 0.0
    for line in body.split(b"\n"):
        if line.startswith(prefix):
            total += float(line.rsplit(b" ", 1)[1])
    return total


PREDICTIONS = b"routing_ml_predictions_total{"
FEEDBACK = b"routing_ml_feedback_total{"


def measure_scrape(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    root = work / "scrape-models"
    build_tree(root, args.models, args.versions, args.seed)
    models = sorted(p.name for p in root.iterdir())
    step = max(1, len(models) // args.active_versions)
    active = []
    for model in models[::step][: args.active_versions]:
        version = (root / model / "ACTIVE").read_text().strip()
        directory = root / model / version
        (directory / "predictions").mkdir()
        active.append(str(directory))
    extra = [
        f"--state.dir={work / 'scrape-state'}",
        "--logs.poll-interval=0.05",
        f"--models.max-models={max(1000, args.models)}",
        "--models.resync-interval=86400",
    ]
    ctx = mp.get_context("fork")  # before any thread exists in this process
    stop, written, ingested = ctx.Event(), ctx.Value("q", 0), ctx.Value("q", 0)
    with Daemon(root, work / "scrape-daemon.log", extra) as daemon:
        try:
            ready_s = daemon.wait_ready(timeout=120)
            for _ in range(5):
                timed_get(daemon.port, "/metrics")
            idle = [timed_get(daemon.port, "/metrics")[0] for _ in range(args.idle_scrapes)]
            writer = ctx.Process(
                target=writer_process,
                args=(active,),
                kwargs={
                    "seed": args.seed,
                    "stop": stop,
                    "written": written,
                    "ingested": ingested,
                    "backlog": args.backlog,
                    "batch": args.writer_batch,
                },
                daemon=True,
            )
            cpu_before = daemon.cpu_seconds()
            writer.start()
            try:
                loaded, samples = [], []
                interval = args.duration / args.scrapes
                begin = time.perf_counter()
                for k in range(args.scrapes):
                    delay = begin + k * interval - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    elapsed, body = timed_get(daemon.port, "/metrics")
                    now = time.perf_counter()
                    predictions = sum_samples(body, PREDICTIONS)
                    ingested.value = int(predictions)
                    loaded.append(elapsed)
                    samples.append((now, predictions, sum_samples(body, FEEDBACK)))
                cpu_s = daemon.cpu_seconds() - cpu_before
                wall_s = time.perf_counter() - begin
            finally:
                stop.set()
                writer.join(10)
                if writer.is_alive():
                    writer.kill()
                    writer.join(5)
            memory = daemon.proc_status()
            _, body = timed_get(daemon.port, "/metrics")
        except Exception:
            print(daemon.log_tail(), file=sys.stderr)
            raise
    # Rate between the first scrape that saw records and the last one.
    started = next((k for k, s in enumerate(samples) if s[1] > 0), len(samples) - 1)
    (t0, p0, f0), (t1, p1, f1) = samples[started], samples[-1]
    span = max(t1 - t0, 1e-9)
    return {
        "models": args.models,
        "versions": args.models * args.versions,
        "active_versions": len(active),
        "daemon_ready_s": ready_s,
        "response_bytes": len(body),
        "scrape_idle": summary_ms(idle),
        "scrape_loaded": summary_ms(loaded),
        "duration_s": wall_s,
        "written_predictions": written.value,
        "ingested_predictions": p1,
        "ingested_feedback": f1,
        "predictions_per_s": (p1 - p0) / span,
        "lines_per_s": (p1 - p0 + f1 - f0) / span,
        "predictions_per_s_since_start": p1 / (t1 - begin),
        # (seconds since the writer started, predictions, feedback, scrape ms) per scrape
        "timeline": [
            (round(t - begin, 3), p, f, round(ms * 1000, 2))
            for (t, p, f), ms in zip(samples, loaded, strict=True)
        ],
        "daemon_cpu_s": cpu_s,
        "daemon_cpu_share": cpu_s / wall_s,
        "daemon_memory_bytes": memory,
        "target_p99_ms": TARGET_P99_MS,
        "target_met": summary_ms(loaded)["p99_ms"] < TARGET_P99_MS,
    }


# ---- report -------------------------------------------------------------------------------


def report(results: dict[str, Any], out: Path) -> None:
    m = results["machine"]
    print(f"prediction-log ingestion; nproc={m['nproc']}, Python {m['python']}, {m['cpu']}")

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    if (tp := results.get("throughput")) is not None:
        rows = []
        for layout, r in tp["layouts"].items():
            rows.append(
                [
                    layout,
                    r["lines"],
                    f"{r['ours_lines_per_s']:,.0f}",
                    f"{r['parse_line_lines_per_s']:,.0f}",
                    f"{r['orjson_lines_per_s']:,.0f}",
                    f"{r['ratio']:.2f}",
                    f"{r['feedback_lines']}/{r['ours_runs'][0]['feedback_matched']}",
                ]
            )
        print(
            table(
                [
                    "layout",
                    "lines",
                    "ours lines/s",
                    "parse_line/s",
                    "orjson lines/s",
                    "ours/orjson",
                    "feedback/joined",
                ],
                rows,
            )
        )
        print(f"throughput target ours/orjson >= {TARGET_RATIO}: {verdict(tp['target_met'])}")
        for row in tp["layouts"]["feedback_file"].get("profile_top", [])[:12]:
            print(f"    {row['own_share'] * 100:5.1f}%  {row['calls']:>9}  {row['function']}")
    if (mem := results.get("memory")) is not None:
        rows = [
            [
                p["records"],
                f"{p['VmRSS'] / 2**20:.1f}",
                f"{p['VmHWM'] / 2**20:.1f}",
                f"{p.get('lines_per_s', 0):,.0f}",
            ]
            for p in mem["points"]
        ]
        print(table(["records", "VmRSS MiB", "VmHWM MiB", "lines/s"], rows))
        print(
            f"memory target RSS growth <= {TARGET_RSS_GROWTH:.0%} "
            f"({mem['rss_growth']:+.1%}): {verdict(mem['target_met'])}"
        )
    if (sc := results.get("scrape")) is not None:
        rows = [
            [
                name,
                sc[key]["n"],
                sc[key]["median_ms"],
                sc[key]["p99_ms"],
                sc[key]["max_ms"],
            ]
            for name, key in (("idle", "scrape_idle"), ("ingesting", "scrape_loaded"))
        ]
        print(table(["/metrics", "scrapes", "median ms", "p99 ms", "max ms"], rows))
        print(
            f"  {sc['versions']} versions, {sc['active_versions']} receiving; ingested "
            f"{sc['predictions_per_s']:,.0f} predictions/s ({sc['lines_per_s']:,.0f} lines/s), "
            f"daemon CPU {sc['daemon_cpu_share']:.2f} cores"
        )
        print(f"scrape target p99 < {TARGET_P99_MS:.0f} ms: {verdict(sc['target_met'])}")
    print(f"results: {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--parts", nargs="+", choices=("throughput", "memory", "scrape"),
        default=["throughput", "memory", "scrape"],
    )  # fmt: skip
    parser.add_argument("--records", type=int, default=1_000_000, help="part 1: predictions")
    parser.add_argument("--repeats", type=int, default=3, help="part 1: timed runs of each")
    parser.add_argument("--profile", action="store_true", help="part 1: add a cProfile run")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--memory-records", type=int, default=10_000_000, help="part 2: total")
    parser.add_argument("--memory-chunk", type=int, default=1_000_000, help="part 2: per step")
    parser.add_argument("--models", type=int, default=100, help="part 3")
    parser.add_argument("--versions", type=int, default=10, help="part 3: per model")
    parser.add_argument("--active-versions", type=int, default=10, help="part 3: with records")
    parser.add_argument("--duration", type=float, default=30.0, help="part 3: seconds")
    parser.add_argument("--scrapes", type=int, default=300, help="part 3: under load")
    parser.add_argument("--idle-scrapes", type=int, default=50, help="part 3: before load")
    parser.add_argument("--backlog", type=int, default=100_000, help="part 3: records ahead")
    parser.add_argument("--writer-batch", type=int, default=1000, help="part 3: per file")
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument("--workdir", type=Path, help="where to write the logs (default: tmp)")
    parser.add_argument("--output", type=Path, help=f"default: bench/results/{NAME}.json")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_child:
        result = memory_child(args.memory_records, args.memory_chunk, args.seed, args.workdir)
        sys.stdout.write(json.dumps(result) + "\n")
        return 0

    guard = SourceGuard()
    results: dict[str, Any] = {"benchmark": NAME}
    parts: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {
        "throughput": measure_throughput,
        "memory": measure_memory,
        "scrape": measure_scrape,
    }
    with tempfile.TemporaryDirectory(prefix="mhe-bench-", dir=args.workdir) as work:
        # Scrape first: it forks the writer, which must happen before any thread exists.
        for name in sorted(args.parts, key=("scrape", "throughput", "memory").index):
            start = time.perf_counter()
            load_before = os.getloadavg()[0]
            results[name] = parts[name](args, Path(work))
            # Other processes on the machine skew the timings: keep the 1-minute load.
            results[name]["loadavg_1min"] = [load_before, os.getloadavg()[0]]
            print(f"  {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    results["machine"] = machine(guard.after())
    results["params"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    met = [results[p]["target_met"] for p in args.parts]
    results["targets_met"] = all(met)
    out = write_results(NAME, results, args.output)
    report(results, out)
    return 1 if args.check and not all(met) else 0


if __name__ == "__main__":
    sys.exit(main())
