"""`model-health-exporter inspect MODELS_DIR` end to end, as a user runs it: a subprocess
on a tree with one version, a reference.jsonl (1,000 rows) and RECORDS predictions of
FEATURES features with feedback for 30% of them (the logs of bench/ingest_daemon.py's
throughput part), timed from the start of the process to its exit with the JSON printed.
Reference in the same run, on the same file: read it, split it into lines, `orjson.loads`
each line. Reported: lines/s of both and their ratio, and the peak RSS of the process.

    .venv/bin/python bench/inspect_throughput.py [--records 200000] [--features 8]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import machine, source_state, table, write_results
from ingest_daemon import orjson_rate, tree, write_log, write_reference

NAME = "inspect_throughput"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mhe-inspect-bench-"))
    try:
        root = work / "models"
        (version_dir,) = tree(root, 1, args.seed)
        write_reference(version_dir, args.seed, args.features)
        log = version_dir / "predictions" / "bench.jsonl"
        lines = write_log(log, args.seed, 0, args.records, args.features, joined=True)
        reference = orjson_rate(log)[0]
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "model_health_exporter", "inspect", str(root), "--format=json"],
            capture_output=True,
            check=True,
        )
        elapsed = time.perf_counter() - start
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        reference = max(reference, orjson_rate(log)[0])
        doc = json.loads(result.stdout)
        (model,) = doc["models"]
        (version,) = model["versions"]
        assert version["predictions_total"] == args.records, version["predictions_total"]
        rate = lines / elapsed
        results = {
            "records": args.records,
            "lines": lines,
            "bytes": log.stat().st_size,
            "seconds": elapsed,
            "lines_per_second": rate,
            "orjson_lines_per_second": reference,
            "ratio": rate / reference,
            "peak_rss_mib": peak_kib / 1024,
            "machine": machine(source_state()),
        }
        print(
            table(
                ["lines", "MB", "seconds", "lines/s", "orjson lines/s", "ratio", "peak RSS MiB"],
                [
                    [
                        lines,
                        f"{results['bytes'] / 1e6:.1f}",
                        f"{elapsed:.2f}",
                        f"{rate:,.0f}",
                        f"{reference:,.0f}",
                        f"{rate / reference:.2f}",
                        f"{peak_kib / 1024:.0f}",
                    ]
                ],
            )
        )
        print(write_results(NAME, results))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
