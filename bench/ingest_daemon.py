"""Prediction-log ingestion end to end through the daemon, as a user starts it: a
subprocess with `--models.dir` and `--state.dir` and otherwise default flags (--flags
adds some, e.g. to compare window settings).

1. throughput: one version with a reference.jsonl (1,000 rows), RECORDS predictions of
   FEATURES features (3 classes with probabilities, ids, 1% failed) and feedback for 30%
   of them one batch after their predictions in the same file (every one joined),
   written before the daemon starts. Timed from the daemon's /readyz until
   `routing_ml_predictions_total` reaches RECORDS (polled with a `name[]` filter every
   0.1 s, --count-interval: the end is seen up to that late). Reference, in this
   process on the same file, before and after the daemon: read it, split it into lines,
   `orjson.loads` each line (median of both). Reported: lines/s of both (feedback lines
   included) and ours / orjson (target >= 0.5), from /readyz to the last count, and
   between the polls that saw 10% and 90% counted (the drain rate once running: no
   start-up, no wait for the poll after the last line).
2. backlog: FILES versions with one predictions file of BACKLOG/FILES records each (no
   feedback), written before the daemon starts; full `/metrics` scrapes back to back
   while it drains them. Reported: the largest gap between the most and the least read
   file at any scrape, as a share of a file (target <= 10%), scrape latency median/p99
   (target p99 < 100 ms) and the drain rate.
3. memory: VERSIONS/2, then VERSIONS versions with 20 features, a 1,000-row reference
   and 1,000 predictions each with ids (all waiting for feedback), all active; RSS of
   the daemon once every version has its predictions. Reported: the RSS of one more
   version, (RSS at VERSIONS - RSS at VERSIONS/2) / (VERSIONS/2) (target <= 256 KiB).
   The predictions are written before the daemon starts, so they fall in one or two
   buckets; with --memory-window=full they are appended in 60 slices, one per bucket
   of a window of 60 buckets of 2 s (--logs.window-bucket-seconds=2: what a version
   holds after an hour of steady traffic at the defaults, in 2 minutes). With
   --memory-feedback, feedback for about 30% of the predictions follows them in the same
   write (so about 700 ids wait instead of 1,000, and the buckets hold labelled counts).
4. rss: one version receiving records from this process as fast as the daemon takes
   them while /metrics is scraped every 20 ms; VmRSS sampled every RSS_STEP records.
   Reported: RSS at the last sample against the first (target within 5%), and the
   RSS against the number of scrapes.
5. scrapes: SCRAPES full /metrics scrapes back to back while 200 records arrive every
   50 ms; VmRSS every 1,000 scrapes. Reported: RSS at the end against RSS after 2,000
   (target within 5%) and bytes per scrape.

    .venv/bin/python bench/ingest_daemon.py [--parts throughput backlog memory rss scrapes]
        [--records 200000] [--count-interval 0.1] [--backlog 1000000 --files 4] [--versions 200]
        [--memory-window one|full] [--memory-feedback]
        [--rss-records 3000000 --rss-step 500000] [--scrapes 20000]
        [--flags='--logs.window-buckets=12 --logs.window-short-buckets=0']
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from _harness import (
    Daemon,
    SourceGuard,
    build_tree,
    http_get,
    machine,
    summary_ms,
    table,
    timed_get,
    wait_until,
    write_results,
)

NAME = "ingest_daemon"
TARGET_RATIO = 0.5
# --memory-window=full: the default window's 60 buckets, shortened so that they fill in 2 min
# (memory depends on the buckets holding data, not on their length)
FULL_SLICES = 60
FULL_BUCKET_S = 2.0
TARGET_SPREAD = 0.10
TARGET_P99_MS = 100.0
TARGET_VERSION_BYTES = 256 * 1024
TARGET_RSS_GROWTH = 0.05
CLASSES = ("P100", "P200", "P300")
CATEGORIES = tuple(f"C{i}" for i in range(30))
BATCH = 2000
FEEDBACK_RATE = 0.30
COUNT_QUERY = "/metrics?name[]=routing_ml_predictions_total"


def features_of(rng: random.Random, n_features: int) -> dict[str, Any]:
    """Half numeric, half categorical; 2% missing numbers."""
    out: dict[str, Any] = {}
    for j in range(n_features):
        if j % 2:
            out[f"cat_{j}"] = rng.choice(CATEGORIES)
        else:
            out[f"num_{j}"] = None if rng.random() < 0.02 else round(rng.gauss(j, 3), 2)
    return out


def records(seed: int, start: int, count: int, n_features: int) -> tuple[list[bytes], list[bytes]]:
    """Prediction lines start..start+count-1 and feedback lines for ~30% of them."""
    rng = random.Random(f"{seed}:{start}:{count}")
    predictions, feedback = [], []
    for i in range(start, start + count):
        rid = f"req-{i:010d}"
        record: dict[str, Any] = {"id": rid, "features": features_of(rng, n_features)}
        latency = round(rng.lognormvariate(3.0, 0.5), 1)
        if rng.random() < 0.01:
            record |= {"prediction": None, "latency_ms": latency, "error": "Timeout"}
        else:
            weights = [rng.random() + (1.5 if k == i % 3 else 0) for k in range(3)]
            total = sum(weights)
            proba = {c: round(w / total, 4) for c, w in zip(CLASSES, weights, strict=True)}
            label = max(proba, key=proba.__getitem__)
            record |= {"prediction": label, "probabilities": proba, "latency_ms": latency}
            if rng.random() < FEEDBACK_RATE:
                actual = label if rng.random() < 0.85 else rng.choice(CLASSES)
                feedback.append(orjson.dumps({"id": rid, "actual": actual}))
        predictions.append(orjson.dumps(record))
    return predictions, feedback


def write_log(  # noqa: PLR0917 - the generator's parameters, in order
    path: Path, seed: int, start: int, count: int, n_features: int, joined: bool
) -> int:
    """Predictions, with (if `joined`) each batch's feedback after the next batch; returns
    the lines written."""
    lines = 0
    lagging: list[bytes] = []
    with path.open("ab") as f:
        for batch in range(start, start + count, BATCH):
            pred, fb = records(seed, batch, min(BATCH, start + count - batch), n_features)
            f.write(b"\n".join(pred + lagging) + b"\n")
            lines += len(pred) + len(lagging)
            lagging = fb if joined else []
        if lagging:
            f.write(b"\n".join(lagging) + b"\n")
            lines += len(lagging)
    return lines


def write_reference(version_dir: Path, seed: int, n_features: int) -> None:
    pred, _ = records(seed + 1, 10**9, 1000, n_features)
    (version_dir / "reference.jsonl").write_bytes(b"\n".join(pred) + b"\n")


def orjson_rate(path: Path) -> tuple[float, float]:
    """Lines per second of wall time and of CPU time: read, split, orjson.loads each."""
    start, cpu = time.perf_counter(), time.process_time()
    data = path.read_bytes()
    lines = data.split(b"\n")
    loads = orjson.loads
    for line in lines:
        if line:
            loads(line)
    n = sum(1 for line in lines if line)
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def counts(port: int) -> dict[tuple[str, str], float]:
    _, body = http_get(port, COUNT_QUERY)
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("routing_ml_predictions_total{"):
            inside = line[line.index("{") + 1 : line.index("}")]
            labels = dict(part.split("=", 1) for part in inside.split(","))
            key = (labels["model"].strip('"'), labels["version"].strip('"'))
            out[key] = float(line.rsplit(" ", 1)[1])
    return out


def tree(root: Path, versions: int, seed: int) -> list[Path]:
    """`versions` versions under one model each, all active; their folders."""
    made = build_tree(root, versions, 1, seed)
    dirs = []
    for v in made:
        d = v.path.parent
        (d / "predictions").mkdir()
        (d / "feedback").mkdir()
        dirs.append(d)
    return dirs


# ---- parts ------------------------------------------------------------------------------


def part_throughput(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    root = work / "models"
    (version_dir,) = tree(root, 1, args.seed)
    write_reference(version_dir, args.seed, args.features)
    log = version_dir / "predictions" / "p.jsonl"
    lines = write_log(log, args.seed, 0, args.records, args.features, joined=True)
    ref_before = orjson_rate(log)
    with Daemon(root, work / "daemon.log", [f"--state.dir={work / 'state'}", *args.flags]) as d:
        d.wait_ready(60)
        start = time.monotonic()
        cpu0 = d.cpu_seconds()
        samples: list[tuple[float, float, float]] = []  # wall, daemon CPU, counted

        def all_counted() -> bool:
            counted = sum(counts(d.port).values())
            samples.append((time.monotonic(), d.cpu_seconds(), counted))
            return counted >= args.records

        wait_until(all_counted, 600, "all predictions counted", interval=args.count_interval)
        elapsed = time.monotonic() - start
        cpu = d.cpu_seconds() - cpu0
        _, body = timed_get(d.port, "/metrics")
    ref_after = orjson_rate(log)
    text = body.decode()
    matched = [x for x in text.splitlines() if x.startswith("routing_ml_feedback_matched_total{")]
    ours = lines / elapsed
    ref = statistics.median([ref_before[0], ref_after[0]])
    # The machine is shared: CPU time says what one core does whatever else runs.
    ref_cpu = statistics.median([ref_before[1], ref_after[1]])
    steady = steady_rates(samples, args.records, lines / args.records)
    return {
        "lines": lines,
        "predictions": args.records,
        "features": args.features,
        "seconds": elapsed,
        "daemon_cpu_seconds": cpu,
        "ours_lines_per_s": ours,
        "ours_lines_per_cpu_s": lines / cpu,
        "orjson_lines_per_s": [ref_before[0], ref_after[0]],
        "orjson_lines_per_cpu_s": [ref_before[1], ref_after[1]],
        "ratio": ours / ref,
        "ratio_cpu": lines / cpu / ref_cpu,
        "steady_lines_per_s": steady and steady[0],
        "steady_lines_per_cpu_s": steady and steady[1],
        "steady_ratio": steady and steady[0] / ref,
        "steady_ratio_cpu": steady and steady[1] / ref_cpu,
        "feedback_matched": matched,
    }


def steady_rates(
    samples: list[tuple[float, float, float]], records: int, lines_per_record: float
) -> tuple[float, float] | None:
    """Lines per second of wall and of CPU time between the polls that saw 10% and 90%
    of the predictions counted: the drain rate once running, without the start-up (the
    reference read, the decoders built) or the wait for the next poll after the last
    line. None when the polls are too few to tell (a run shorter than about 10 polls)."""
    first = next((s for s in samples if s[2] >= 0.1 * records), None)
    last = next((s for s in samples if s[2] >= 0.9 * records), None)
    if first is None or last is None or last[0] - first[0] < 0.5:
        return None
    lines = (last[2] - first[2]) * lines_per_record
    return lines / (last[0] - first[0]), lines / max(last[1] - first[1], 1e-9)


def part_backlog(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    root = work / "models"
    dirs = tree(root, args.files, args.seed)
    per_file = args.backlog // args.files
    for i, d in enumerate(dirs):
        write_log(d / "predictions" / "p.jsonl", args.seed + i, 0, per_file, args.features, False)
    latencies: list[float] = []
    worst_spread = 0.0
    with Daemon(root, work / "daemon.log", [f"--state.dir={work / 'state'}", *args.flags]) as d:
        d.wait_ready(60)
        start = time.monotonic()
        done = False
        while not done:
            seconds, body = timed_get(d.port, "/metrics")
            latencies.append(seconds)
            seen = {}
            for line in body.decode().splitlines():
                if line.startswith("routing_ml_predictions_total{"):
                    seen[line[line.index("{") : line.index("}")]] = float(line.rsplit(" ", 1)[1])
            values = [seen.get(k, 0.0) for k in sorted(seen)] + [0.0] * (args.files - len(seen))
            worst_spread = max(worst_spread, (max(values) - min(values)) / per_file)
            done = sum(values) >= per_file * args.files
            if time.monotonic() - start > 900:
                raise RuntimeError("backlog not drained in 15 minutes")
        elapsed = time.monotonic() - start
    return {
        "files": args.files,
        "lines": per_file * args.files,
        "seconds": elapsed,
        "lines_per_s": per_file * args.files / elapsed,
        "worst_spread": worst_spread,
        "scrapes": summary_ms(latencies),
    }


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def part_memory(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """RSS at VERSIONS/2 and at VERSIONS versions with logs: the slope is the memory of
    one more active version, without what any daemon with data pays once (libraries
    imported on first use, the allocator's first arenas)."""
    out: dict[str, Any] = {"versions": [args.versions // 2, args.versions], "features": 20}
    out["feedback"] = FEEDBACK_RATE if args.memory_feedback else 0.0
    full = args.memory_window == "full"
    flags = list(args.flags)
    if full:  # as many buckets as the default window, each FULL_BUCKET_S long
        flags.append(f"--logs.window-bucket-seconds={FULL_BUCKET_S}")
        out["window"] = f"{FULL_SLICES} slices, one per {FULL_BUCKET_S} s bucket"
    rss_at = []
    for n in out["versions"]:
        root = work / f"models-{n}"
        dirs = tree(root, n, args.seed)
        batches = []
        for i, d in enumerate(dirs):
            write_reference(d, args.seed + i, 20)
            pred, feedback = records(args.seed + i, 0, 1000, 20)
            # each slice's lines: its predictions, then (--memory-feedback) their feedback
            slices = [
                pred[k * 1000 // FULL_SLICES : (k + 1) * 1000 // FULL_SLICES]
                for k in range(FULL_SLICES)
            ]
            if args.memory_feedback:
                of = {orjson.loads(line)["id"]: line for line in feedback}
                slices = [
                    part + [of[i] for i in (orjson.loads(line)["id"] for line in part) if i in of]
                    for part in slices
                ]
            batches.append(slices)
            if not full:
                lines = [line for part in slices for line in part]
                (d / "predictions" / "p.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        state = work / f"state-{n}"
        with Daemon(root, work / f"daemon-{n}.log", [f"--state.dir={state}", *flags]) as d:
            d.wait_ready(120)
            if full:
                # 1,000 predictions per version in as many slices as the window has
                # buckets, one slice per bucket period: every bucket holds data.
                start = time.monotonic()
                for k in range(FULL_SLICES):
                    time.sleep(max(0.0, start + k * FULL_BUCKET_S - time.monotonic()))
                    for d_, slices in zip(dirs, batches, strict=True):
                        with (d_ / "predictions" / "p.jsonl").open("ab") as f:
                            f.write(b"\n".join(slices[k]) + b"\n")
            wait_until(
                lambda port=d.port, n=n: sum(counts(port).values()) >= 1000 * n,
                600,
                "every version's predictions",
                interval=0.5,
            )
            for _ in range(5):  # settle: summaries, a checkpoint, and a few scrapes
                timed_get(d.port, "/metrics")
                time.sleep(2)
            rss_at.append(rss(d.pid))
    out["rss"] = rss_at
    out["bytes_per_version"] = (rss_at[1] - rss_at[0]) / (args.versions - args.versions // 2)
    return out


def part_rss(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    root = work / "models"
    (version_dir,) = tree(root, 1, args.seed)
    write_reference(version_dir, args.seed, args.features)
    log = version_dir / "predictions" / "p.jsonl"
    samples: list[dict[str, float]] = []
    scrapes = 0
    stop = threading.Event()
    with Daemon(root, work / "daemon.log", [f"--state.dir={work / 'state'}", *args.flags]) as d:
        d.wait_ready(60)

        def scraper() -> None:
            nonlocal scrapes
            while not stop.is_set():
                timed_get(d.port, "/metrics")
                scrapes += 1
                stop.wait(0.02)

        thread = threading.Thread(target=scraper, daemon=True)
        thread.start()
        written = 0
        try:
            while written < args.rss_records:
                step = min(args.rss_step, args.rss_records - written)
                for part in range(written, written + step, 100_000):
                    n = min(100_000, written + step - part)
                    write_log(log, args.seed, part, n, args.features, joined=True)
                    target = part + n
                    wait_until(
                        lambda t=target: sum(counts(d.port).values()) >= t,
                        600,
                        "records counted",
                        interval=0.2,
                    )
                written += step
                # rotate the consumed file away, as logrotate would
                log.rename(log.with_suffix(".1"))
                time.sleep(1.5)
                log.with_suffix(".1").unlink()
                samples.append({"records": written, "rss": rss(d.pid), "scrapes": scrapes})
                print(f"  {samples[-1]}", file=sys.stderr, flush=True)
        finally:
            stop.set()
            thread.join()
    first, last = samples[0], samples[-1]
    return {
        "samples": samples,
        "growth": last["rss"] / first["rss"] - 1,
        "bytes_per_scrape": (last["rss"] - first["rss"])
        / max(1, last["scrapes"] - first["scrapes"]),
    }


def part_scrapes(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """SCRAPES full /metrics scrapes back to back while records arrive (200 every 50 ms,
    so the data changes between most scrapes); VmRSS every 1,000 scrapes."""
    root = work / "models"
    (version_dir,) = tree(root, 1, args.seed)
    write_reference(version_dir, args.seed, args.features)
    log = version_dir / "predictions" / "p.jsonl"
    stop = threading.Event()
    samples: list[dict[str, int]] = []
    with Daemon(root, work / "daemon.log", [f"--state.dir={work / 'state'}", *args.flags]) as d:
        d.wait_ready(60)

        def writer() -> None:
            start = 0
            while not stop.is_set():
                write_log(log, args.seed, start, 200, args.features, joined=True)
                start += 200
                stop.wait(0.05)

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        try:
            for n in range(1, args.scrapes + 1):
                timed_get(d.port, "/metrics")
                if n % 1000 == 0:
                    samples.append({"scrapes": n, "rss": rss(d.pid)})
                    print(f"  {samples[-1]}", file=sys.stderr, flush=True)
        finally:
            stop.set()
            thread.join()
        records_seen = sum(counts(d.port).values())
    first, last = samples[1] if len(samples) > 1 else samples[0], samples[-1]
    return {
        "samples": samples,
        "records": records_seen,
        "growth_after_2000": last["rss"] / first["rss"] - 1,
        "bytes_per_scrape": (last["rss"] - first["rss"])
        / max(1, last["scrapes"] - first["scrapes"]),
    }


PARTS = {
    "throughput": part_throughput,
    "backlog": part_backlog,
    "memory": part_memory,
    "rss": part_rss,
    "scrapes": part_scrapes,
}


def summary_rows(results: dict[str, Any], args: argparse.Namespace) -> list[list[str]]:
    """The table of each part's result against its target."""
    rows: list[list[str]] = []
    if "throughput" in results:
        r = results["throughput"]
        rows.append(["throughput ours/orjson", f"{r['ratio']:.2f}", f">= {TARGET_RATIO}"])
        rows.append(["same, per CPU second", f"{r['ratio_cpu']:.2f}", f">= {TARGET_RATIO}"])
        if r["steady_ratio"]:
            steady, steady_cpu = r["steady_ratio"], r["steady_ratio_cpu"]
            rows.append(["  from 10% to 90% counted", f"{steady:.2f}", f">= {TARGET_RATIO}"])
            rows.append(["  same, per CPU second", f"{steady_cpu:.2f}", f">= {TARGET_RATIO}"])
    if "backlog" in results:
        r = results["backlog"]
        rows.append(["backlog worst spread", f"{r['worst_spread']:.1%}", "<= 10%"])
        rows.append(["scrape p99 while draining", f"{r['scrapes']['p99_ms']:.1f} ms", "< 100 ms"])
    if "memory" in results:
        r = results["memory"]
        rows.append(["bytes per active version", f"{r['bytes_per_version']:.0f}", "<= 262144"])
    if "rss" in results:
        r = results["rss"]
        rows.append(["RSS growth under 20 ms scrapes", f"{r['growth']:+.1%}", "within 5%"])
    if "scrapes" in results:
        r = results["scrapes"]
        growth = f"{r['growth_after_2000']:+.1%}"
        rows.append([f"RSS, scrapes 2,000 -> {args.scrapes:,}", growth, "within 5%"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=15)
    parser.add_argument(
        "--count-interval",
        type=float,
        default=0.1,
        help="seconds between reads of the throughput part's count: its timing's resolution",
    )
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--versions", type=int, default=200)
    parser.add_argument(
        "--memory-window",
        choices=["one", "full"],
        default="one",
        help="memory part: each version's predictions at once (one or two buckets), or "
        f"spread over {FULL_SLICES} buckets of {FULL_BUCKET_S} s (every bucket of the window)",
    )
    parser.add_argument(
        "--memory-feedback",
        action="store_true",
        help=f"memory part: feedback for about {FEEDBACK_RATE:.0%}% of the predictions, "
        "right after them (the buckets hold labelled counts; fewer ids wait)",
    )
    parser.add_argument("--rss-records", type=int, default=3_000_000)
    parser.add_argument("--rss-step", type=int, default=500_000)
    parser.add_argument("--scrapes", type=int, default=20_000)
    parser.add_argument(
        "--flags",
        type=shlex.split,
        default=[],
        help="extra daemon flags, e.g. '--logs.window-buckets=12'",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    guard = SourceGuard()
    results: dict[str, Any] = {"parameters": {k: str(v) for k, v in vars(args).items()}}
    for name in args.parts:
        work = Path(tempfile.mkdtemp(prefix=f"{NAME}-{name}-", dir=args.workdir))
        try:
            print(f"{name} ...", file=sys.stderr, flush=True)
            results[name] = PARTS[name](work, args)
            print(json.dumps(results[name], indent=1, default=str), flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    results["machine"] = machine(guard.after())
    print(table(["measure", "value", "target"], summary_rows(results, args)))
    print(f"results: {write_results(NAME, results, args.output)}")


if __name__ == "__main__":
    main()
