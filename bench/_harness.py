"""Shared pieces of the benchmarks: a deterministic model tree, the daemon as a
subprocess on a free loopback port (stopped by its PID), HTTP timing, percentiles,
machine facts and result files.

Not a benchmark itself; imported by the scripts next to it (they run as
`.venv/bin/python bench/<name>.py`, so this directory is on sys.path)."""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
HOST = "127.0.0.1"

COLUMNS = (
    "ITEM_CD",
    "PROC_CD",
    "DURATION_MIN",
    "MACHINE_ID",
    "SHIFT",
    "QTY",
    "MATERIAL",
    "PRIORITY",
)


# ---- waiting ------------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.01
) -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except (OSError, http.client.HTTPException) as exc:
            last_error = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what} ({last_error!r})")
        time.sleep(interval)


# ---- the model tree -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Version:
    model: str
    version: str
    path: Path  # metrics.json
    doc: dict[str, Any]


def model_names(models: int) -> list[str]:
    width = max(3, len(str(models - 1)))
    return [f"model-{i:0{width}d}" for i in range(models)]


def version_names(versions: int) -> list[str]:
    width = max(2, len(str(versions)))
    return [f"v{j:0{width}d}" for j in range(1, versions + 1)]


def metrics_doc(model: str, version: str, index: int, seed: int) -> dict[str, Any]:
    """A metrics.json shaped like examples/models/routing/production-v3/metrics.json,
    with values derived only from (seed, model, version)."""
    rng = random.Random(f"{seed}:{model}:{version}")
    samples = rng.randrange(1_000, 60_000)
    generated = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(
        days=7 * index, minutes=rng.randrange(600)
    )
    accuracy = round(rng.uniform(0.80, 0.97), 3)
    precision = round(accuracy - rng.uniform(0.0, 0.03), 3)
    recall = round(accuracy - rng.uniform(0.0, 0.02), 3)
    return {
        "generated_at": generated.isoformat(),
        "model_version": f"{model}-{version}",
        "training_samples": samples,
        "dataset_stats": {
            "total_samples": samples,
            "unique_items": rng.randrange(50, 500),
            "unique_processes": rng.randrange(10, 80),
            "unique_candidates": rng.randrange(10, 80),
            "total_columns": len(COLUMNS),
            "column_names": list(COLUMNS),
            "missing_rates": {
                c: round(rng.choice((0.0, 0.0, 0.0, rng.uniform(0, 0.05))), 4) for c in COLUMNS
            },
        },
        "training_duration_sec": round(rng.uniform(1.0, 600.0), 1),
        "accuracy": accuracy,
        "precision_weighted": precision,
        "recall_weighted": recall,
        "f1_weighted": round(2 * precision * recall / (precision + recall), 3),
        "auc_roc": round(min(0.999, accuracy + rng.uniform(0.01, 0.05)), 3),
        "log_loss": round(rng.uniform(0.1, 0.4), 3),
        "note": "benchmark fixture",
    }


BASELINE = {
    "baseline_version": "v01",
    "established_date": "2026-01-01",
    "quality_thresholds": {
        "accuracy": {"target": 0.92, "warning": 0.85, "critical": 0.80},
        "precision_weighted": {"target": 0.89, "warning": 0.82, "critical": 0.75},
        "recall_weighted": {"target": 0.91, "warning": 0.84, "critical": 0.78},
        "f1_weighted": {"target": 0.90, "warning": 0.83, "critical": 0.77},
    },
    "expected_dataset": {"min_samples": 1000, "min_unique_items": 50, "max_missing_rate": 0.10},
}


def write_model(root: Path, model: str, names: list[str], seed: int) -> list[Version]:
    """One model of the nested layout: a metrics.json per version in `names`, a
    baseline_metrics.json and an ACTIVE file naming the last version."""
    out = []
    model_dir = root / model
    for index, version in enumerate(names):
        doc = metrics_doc(model, version, index, seed)
        path = model_dir / version / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(doc, indent=2))
        out.append(Version(model, version, path, doc))
    (model_dir / "baseline_metrics.json").write_text(json.dumps(BASELINE, indent=2))
    (model_dir / "ACTIVE").write_text(names[-1] + "\n")
    return out


def build_tree(root: Path, models: int, versions: int, seed: int) -> list[Version]:
    """Nested layout `root/<model>/<version>/metrics.json`, plus per model a
    baseline_metrics.json and an ACTIVE file naming the newest version (as
    examples/models/routing has)."""
    out = []
    names = version_names(versions)
    for model in model_names(models):
        out += write_model(root, model, names, seed)
    return out


def replace_json(path: Path, doc: dict[str, Any]) -> Path:
    """Write the temporary file for an atomic replace; the caller renames it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    return tmp


# ---- HTTP ---------------------------------------------------------------------------------


def http_get(
    port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, bytes]:
    """One GET on a fresh connection (the daemon's server speaks HTTP/1.0)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def timed_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[float, bytes]:
    """Seconds from sending the request to having read the whole body, and the body."""
    start = time.perf_counter()
    status, body = http_get(port, path, headers)
    elapsed = time.perf_counter() - start
    if status != 200:
        raise RuntimeError(f"GET {path}: HTTP {status}: {body[:200]!r}")
    return elapsed, body


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# ---- the daemon ---------------------------------------------------------------------------


class Daemon:
    """`python -m model_health_exporter run` on a free 127.0.0.1 port; a context manager
    that always stops the process it started, by PID (SIGTERM, wait, then SIGKILL)."""

    def __init__(self, models_dir: Path, log_path: Path, extra_args: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.args = [
            sys.executable,
            "-m",
            "model_health_exporter",
            "run",
            f"--web.listen-address={HOST}:{self.port}",
            f"--models.dir={models_dir}",
            "--log.format=json",
            *extra_args,
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Daemon:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        print(f"  daemon pid {self.proc.pid} on {HOST}:{self.port}", file=sys.stderr, flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_ready(self, timeout: float) -> float:
        """Seconds until /readyz answered 200."""
        start = time.monotonic()

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited rc={self.proc.returncode}:\n{self.log_tail()}")
            return http_get(self.port, "/readyz", timeout=5)[0] == 200

        wait_until(ready, timeout, "daemon /readyz", interval=0.05)
        return time.monotonic() - start

    def stop(self, timeout: float = 15) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def proc_signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def proc_status(self) -> dict[str, int]:
        """VmRSS and VmHWM in bytes, from /proc/PID/status."""
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
        return out

    def cpu_seconds(self) -> float:
        """user + system CPU time of the daemon so far, from /proc/PID/stat."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return ticks / os.sysconf("SC_CLK_TCK")


# ---- statistics and output ----------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "min_ms": min(ms),
        "median_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms),
    }


def source_state() -> dict[str, Any]:
    """Which code is measured: where model_health_exporter is imported from (PYTHONPATH
    can point at an export of another commit), and if that is this repository's src/,
    the commit, whether src/ differs from it, and a fingerprint of that difference."""
    spec = importlib.util.find_spec("model_health_exporter")
    if spec is None or spec.origin is None:
        return {"package": None}
    package = Path(spec.origin).resolve().parent
    src = (BENCH_DIR.parent / "src").resolve()
    state: dict[str, Any] = {"package": str(package), "commit": None, "src_modified": None}
    if not package.is_relative_to(src):
        return state

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=src, capture_output=True, text=True, timeout=30, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout

    status, diff = git("status", "--porcelain", "--", "."), git("diff", "HEAD", "--", ".")
    commit = git("rev-parse", "HEAD")
    state["commit"] = commit.strip() if commit else None
    if status is not None and diff is not None:
        state["src_modified"] = bool(status.strip())
        untracked = [line[3:] for line in status.splitlines() if line.startswith("??")]
        contents = [(src.parent / u).read_bytes() for u in untracked if (src.parent / u).is_file()]
        digest = hashlib.sha256(diff.encode() + b"".join(contents) + status.encode())
        state["src_fingerprint"] = digest.hexdigest()[:16]
    return state


class SourceGuard:
    """Records the measured code before a run and notices if it changed during it (other
    people may be editing src/ while a benchmark runs)."""

    def __init__(self) -> None:
        self.before = source_state()

    def after(self) -> dict[str, Any]:
        now = source_state()
        changed = now != self.before
        if changed:
            print(
                "warning: src/ changed while the benchmark ran; daemons started before the "
                "change measured the 'source' recorded, later ones may not",
                file=sys.stderr,
            )
        return {**self.before, "changed_during_run": changed}


def machine(source: dict[str, Any]) -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "prometheus_client": dist_version("prometheus-client"),
        "inotify_simple": dist_version("inotify-simple"),
        "source": source,
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        return f"{v:.1f}" if isinstance(v, float) else str(v)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| "
        + " | ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        + " |"
        for r in cells
    ]
    return "\n".join([line, rule, *body])


def write_results(name: str, results: dict[str, Any], path: Path | None = None) -> Path:
    path = path or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
