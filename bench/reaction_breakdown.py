"""Where reaction latency goes: a diagnostic companion to reaction_latency.py.

Runs the daemon's own pipeline in this process (ModelDirWatcher -> ScanWorker ->
ModelRegistry, no HTTP) on the same deterministic tree and measures publish latency,
from the rename of metrics.json to a registry snapshot holding the new value:

  * with nothing else running: the pipeline's own latency (inotify, debounce, refresh);
  * while another thread keeps one core busy without blocking (--load): how much the
    scan worker suffers from GIL contention.

--load busy (default) is a plain Python loop. --load collector renders the
name[]-filtered /metrics body back to back the way the daemon did up to commit a2baa8f
(ModelCollector + prometheus_client generate_latest on every request; today the
uncached reference the render cache is tested against), and also times that rendering.

The snapshot is checked every 0.5 ms, so latencies are accurate to about that (plus
one GIL switch interval, 5 ms, while the load runs).

    .venv/bin/python bench/reaction_breakdown.py [--load collector] [--changes 50]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from _harness import (
    SourceGuard,
    Version,
    build_tree,
    machine,
    replace_json,
    summary_ms,
    table,
    wait_until,
    write_results,
)
from model_health_exporter.exposition.collector import ModelCollector
from model_health_exporter.sources.watcher import ModelDirWatcher
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.registry import (
    DROP_LIMITS,
    ModelRegistry,
    RegistryConfig,
    RootConfig,
    initial_error_keys,
)
from model_health_exporter.state.scan_worker import ScanWorker

NAME = "reaction_breakdown"
NAMESPACE = "routing_ml"


def served_accuracy(registry: ModelRegistry, v: Version) -> float | None:
    model = registry.snapshot.models.get(v.model)
    if model is None:
        return None
    for view in model.versions:
        if view.version == v.version and view.metrics is not None:
            return view.metrics.accuracy
    return None


def publish_latencies(
    registry: ModelRegistry,
    versions: list[Version],
    changes: int,
    rng: random.Random,
    *,
    base: float,
) -> list[float]:
    """Seconds from each rename to its publication in a registry snapshot."""
    out = []
    for i in range(changes):
        v = rng.choice(versions)
        accuracy = base + (i + 1) / 1_000_000
        tmp = replace_json(v.path, {**v.doc, "accuracy": accuracy})

        def published(v: Version = v, accuracy: float = accuracy) -> bool:
            return served_accuracy(registry, v) == accuracy

        start = time.perf_counter()
        tmp.replace(v.path)  # os.replace: atomic within the directory
        wait_until(
            published,
            timeout=10,
            what=f"{v.model}/{v.version} accuracy {accuracy}",
            interval=0.0005,
        )
        out.append(time.perf_counter() - start)
        v.doc["accuracy"] = accuracy
    return out


Renderer = Callable[[list[str] | None], bytes]


def collector_renderer(registry: ModelRegistry) -> Renderer:
    """The model part of /metrics for `name[]` filter `names` (None: all), rendered
    without any cache: ModelCollector + generate_latest, as /metrics did up to a2baa8f."""
    collectors = CollectorRegistry(auto_describe=True)
    collectors.register(ModelCollector(lambda: registry.snapshot, NAMESPACE))
    return lambda names: generate_latest(
        collectors if names is None else collectors.restricted_registry(names)
    )


def busy(stop: threading.Event) -> None:
    """Pure-Python work that never blocks, in slices like a request handler's."""
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def render_times(render: Renderer, names: list[str] | None, n: int) -> list[float]:
    render(names)
    out = []
    for _ in range(n):
        start = time.perf_counter()
        render(names)
        out.append(time.perf_counter() - start)
    return out


def report(results: dict[str, Any], out: Path) -> None:
    args = results["params"]
    m = results["machine"]
    print(
        f"reaction breakdown (in-process, --load {args['load']}): {results['versions']} versions, "
        f"debounce {args['debounce'] * 1000:.0f} ms; nproc={m['nproc']}, Python {m['python']}"
    )
    rows = [
        ("rename -> published, idle", "publish_idle"),
        (f"rename -> published, {args['load']} load", "publish_under_load"),
        ("uncached render, name[]-filtered body", "render_filtered"),
        ("uncached render, full body", "render_full"),
    ]
    keys = ("median_ms", "p90_ms", "p99_ms", "max_ms")
    print(
        table(
            ["", "median ms", "p90 ms", "p99 ms", "max ms"],
            [[label, *(results[key][k] for k in keys)] for label, key in rows if key in results],
        )
    )
    print(f"results: {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--versions", type=int, default=10, help="versions per model")
    parser.add_argument("--changes", type=int, default=50, help="changes per condition")
    parser.add_argument("--renders", type=int, default=20, help="timed renders per kind")
    parser.add_argument("--debounce", type=float, default=0.02, help="as --models.debounce")
    parser.add_argument(
        "--load",
        choices=("busy", "collector"),
        default="busy",
        help="the CPU-bound thread: a Python loop (default) or uncached rendering of the "
        "name[]-filtered body (ModelCollector + generate_latest, /metrics up to a2baa8f)",
    )
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--output", type=Path, help=f"default: bench/results/{NAME}.json")
    args = parser.parse_args(argv)
    guard = SourceGuard()
    rng = random.Random(args.seed)
    filtered = [f"{NAMESPACE}_model_accuracy"]

    with tempfile.TemporaryDirectory(prefix="mhe-bench-", dir=args.workdir) as work:
        root = Path(work) / "models"
        versions = build_tree(root, args.models, args.versions, args.seed)
        registry = ModelRegistry(
            RegistryConfig(roots=(RootConfig(root),), max_models=max(1000, args.models)),
            LabelledCounter(initial_error_keys()),
            LabelledCounter((limit,) for limit in DROP_LIMITS),
        )
        render = collector_renderer(registry)
        worker = ScanWorker(registry, resync_interval=86400, debounce=args.debounce)
        watcher = ModelDirWatcher([root], worker.notify)
        stop = threading.Event()

        def render_loop(stop: threading.Event) -> None:
            while not stop.is_set():
                render(filtered)

        load = busy if args.load == "busy" else render_loop
        loader = threading.Thread(target=load, args=(stop,), name="cpu-load", daemon=True)
        renders: dict[str, list[float]] = {}
        with contextlib.ExitStack() as running:  # stops what was started, in reverse order
            watcher.start()  # before the scan, as the daemon does
            running.callback(watcher.stop)
            registry.full_scan()
            worker.start()
            running.callback(worker.stop)
            idle = publish_latencies(registry, versions, args.changes, rng, base=0.5)
            loader.start()
            running.callback(loader.join)
            running.callback(stop.set)
            loaded = publish_latencies(registry, versions, args.changes, rng, base=0.6)
            stop.set()
            loader.join()
            if args.load == "collector":
                renders["render_filtered"] = render_times(render, filtered, args.renders)
                renders["render_full"] = render_times(render, None, max(3, args.renders // 4))

    results: dict[str, Any] = {
        "benchmark": NAME,
        "machine": machine(guard.after()),
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "versions": len(versions),
        "publish_idle": summary_ms(idle),
        "publish_under_load": summary_ms(loaded),
        **{name: summary_ms(times) for name, times in renders.items()},
    }
    out = write_results(NAME, results, args.output)
    report(results, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
