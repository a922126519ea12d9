"""`model-health-exporter inspect`: the daemon's view of a models directory computed once,
without a server, or two datasets compared (the drift gate for CI and batch jobs)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

from model_health_exporter import exit_codes
from model_health_exporter.cli_parser import Parser
from model_health_exporter.config import ConfigError, Settings, load_settings

_FORMATS: Final = ("table", "json")


class ProgressBar:
    """One line on a terminal, redrawn at most ten times a second; nothing elsewhere."""

    def __init__(self, stream: TextIO, label: str, width: int = 30) -> None:
        self._stream, self._label, self._width = stream, label, width
        self._enabled = stream.isatty()
        self._started = time.monotonic()
        self._next = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self._enabled or (now < self._next and done < total):
            return
        self._next = now + 0.1
        share = min(done / total, 1.0) if total else 1.0
        filled = round(share * self._width)
        rate = done / max(now - self._started, 1e-9) / 1e6
        self._stream.write(
            f"\r{self._label} [{'#' * filled}{'.' * (self._width - filled)}] {share:4.0%} "
            f"{done / 1e6:.1f}/{total / 1e6:.1f} MB {rate:.1f} MB/s"
        )
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()


def _fail_on(values: Sequence[str], parser: Parser) -> list[str]:
    from model_health_exporter.drift_gate import CHECKS  # noqa: PLC0415 - loads numpy

    checks = [c.strip() for value in values for c in value.split(",") if c.strip()]
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        parser.error(f"--fail-on: unknown check {unknown[0]!r} (choose from {', '.join(CHECKS)})")
    return list(dict.fromkeys(checks))


def _parser() -> Parser:
    parser = Parser(
        prog="model-health-exporter inspect",
        usage="%(prog)s MODELS_DIR [--format table|json] [--fail-on CHECK]\n"
        "       %(prog)s --reference REF --current CUR [--format table|json] [--fail-on CHECK]",
        description="With MODELS_DIR: what the daemon would serve for those files, computed "
        "once without a server (versions, thresholds, degradation, the prediction logs' "
        "drift, quality, live and estimated performance, health and retraining reasons); "
        "--format json prints what /api/v1/models serves. With --reference and --current "
        "(CSV with a column per feature, or JSON Lines in the prediction-log format): the "
        "two datasets compared with the daemon's drift statistics and multiple-testing "
        "correction, with schema changes. Exit 0, or 1 when a check named by --fail-on "
        "fails, 2 for bad flags or unusable input (or a --fail-on check the data is too "
        "small to evaluate), 3 for a runtime failure.",
    )
    parser.add_argument(
        "models_dirs",
        nargs="*",
        type=Path,
        metavar="MODELS_DIR",
        help="Root of the model folders, as given to the daemon with --models.dir (one or more).",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        metavar="REF",
        help="Reference dataset: CSV, JSON Lines, or a reference_profile.json.",
    )
    parser.add_argument(
        "--current", type=Path, metavar="CUR", help="Current dataset: CSV or JSON Lines."
    )
    parser.add_argument(
        "--format",
        choices=_FORMATS,
        default="table",
        help="table: for a terminal; json: one document (with MODELS_DIR, the one "
        "/api/v1/models serves) (default: table).",
    )
    parser.add_argument(
        "--fail-on",
        action="append",
        default=[],
        metavar="CHECK",
        help="Exit 1 when this check fails: drift (a feature or the prediction drifted), "
        "quality (a feature's missing, out-of-range or unseen-category ratio, or the "
        "invalid-record ratio, above --quality-max; a feature missing or a numeric one "
        "turned text), health (score below --health-min). Repeatable or comma-separated. "
        "With MODELS_DIR: over every model's active version.",
    )
    parser.add_argument(
        "--quality-max",
        type=float,
        default=None,
        metavar="RATIO",
        help="Largest data-quality ratio that passes (default: 0.10, the default "
        "max_missing_rate).",
    )
    parser.add_argument(
        "--health-min",
        type=float,
        default=None,
        metavar="SCORE",
        help="Lowest health score that passes (default: 70, where the level turns fair).",
    )
    parser.add_argument(
        "--config.file",
        dest="config_file",
        type=Path,
        metavar="PATH",
        help="The daemon's YAML configuration: its drift method, threshold, correction, "
        "bins, window and baseline settings apply.",
    )
    return parser


def _settings(args: Any, overrides: dict[str, Any]) -> Settings:
    return load_settings(overrides, args.config_file)


def _verdict_json(verdicts: Mapping[str, Any], fail_on: Sequence[str]) -> dict[str, Any]:
    return {
        "fail_on": list(fail_on),
        "passed": not any(verdicts[c].failed for c in fail_on),
        "checks": {
            c: {"failed": v.failed, "evaluated": v.evaluated, "reasons": list(v.reasons)}
            for c, v in verdicts.items()
        },
    }


def _verdict_lines(verdicts: Mapping[str, Any], fail_on: Sequence[str]) -> list[str]:
    lines = []
    for check, v in verdicts.items():
        state = "FAILED" if v.failed else ("passed" if v.evaluated else "not evaluated")
        gate = " (--fail-on)" if check in fail_on else ""
        lines.append(f"check {check}: {state}{gate}")
        lines += [f"  {reason}" for reason in v.reasons]
    return lines


def _exit_status(verdicts: Mapping[str, Any], fail_on: Sequence[str]) -> int:
    unevaluated = [c for c in fail_on if not verdicts[c].evaluated]
    if unevaluated:
        for check in unevaluated:
            reason = "; ".join(verdicts[check].reasons)
            print(f"model-health-exporter inspect: --fail-on {check}: {reason}", file=sys.stderr)
        return exit_codes.USAGE
    failed = any(verdicts[c].failed for c in fail_on)
    return exit_codes.PROBLEM_FOUND if failed else exit_codes.OK


def _models(args: Any, fail_on: list[str], limits: tuple[float, float]) -> int:
    from model_health_exporter import drift_gate, offline  # noqa: PLC0415 - numpy and scipy
    from model_health_exporter.exposition.pages import models_json  # noqa: PLC0415
    from model_health_exporter.inspect_table import render_table  # noqa: PLC0415

    for directory in args.models_dirs:
        if not directory.is_dir():
            print(f"{directory}: not a directory", file=sys.stderr)
            return exit_codes.USAGE
    try:
        settings = _settings(args, {"models": {"dirs": [str(d) for d in args.models_dirs]}})
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"model-health-exporter inspect: config error: {problem}", file=sys.stderr)
        return exit_codes.USAGE
    bar = ProgressBar(sys.stderr, "reading prediction logs")
    try:
        result = offline.inspect_models(settings, bar)
    finally:
        bar.close()
    document = json.loads(models_json(result.snapshot, result.live))
    verdicts = drift_gate.models_verdicts(document, *limits)
    if args.format == "json":
        if fail_on:
            document["gate"] = _verdict_json(verdicts, fail_on)
        print(json.dumps(document, indent=2))
    else:
        text = render_table(document)
        problems = sorted((k, int(n)) for k, n in result.errors.values().items() if n)
        if problems:
            listed = "; ".join(f"{'/'.join(key)} {n}" for key, n in problems)
            text += (
                f"\nproblems while reading (source/reason count, as "
                f"routing_ml_exporter_errors_total): {listed}\n"
            )
        if fail_on:
            text += "\n" + "\n".join(_verdict_lines(verdicts, fail_on)) + "\n"
        sys.stdout.write(text)
    return _exit_status(verdicts, fail_on)


def _dataset_table(document: Mapping[str, Any]) -> list[str]:
    ref, cur, d = document["reference"], document["current"], document["drift"]
    lines = [
        f"reference {ref['path']}: {ref['rows']} rows ({ref['source']})",
        f"current   {cur['path']}: {cur['rows']} rows"
        + (
            f", {cur['skipped']} invalid skipped ({cur['first_problem']})" if cur["skipped"] else ""
        ),
        f"drift method {d['method']}, threshold {d['threshold']:g}, correction "
        f"{d['correction']}; statistics need {d['min_samples']} rows",
    ]
    schema = document["schema"]
    if schema["missing"]:
        lines.append("schema: MISSING from current: " + ", ".join(schema["missing"]))
    if schema["added"]:
        lines.append("schema: added in current (not compared): " + ", ".join(schema["added"]))
    for name, ratio in schema["numeric_to_text"].items():
        lines.append(f"schema: numeric feature {name} holds TEXT in {ratio:.1%} of its values")
    rows = [["FEATURE", "DRIFT", "P (UNCORRECTED)", "PSI", "JS", "KS", "WASSERST.", "MISSING"]]
    for name, s in sorted(document["features"].items()):
        flag = s.get("drift_detected")
        rows.append(
            [
                name,
                "-" if flag is None else ("DRIFTED" if flag else "ok"),
                *(
                    "-" if s.get(k) is None else f"{s[k]:.3g}"
                    for k in ("drift_p_value", "psi", "js_distance", "ks_statistic", "wasserstein")
                ),
                "-" if s.get("missing_ratio") is None else f"{s['missing_ratio']:.1%}",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    m = document["metrics"]
    if "data_drift_share" in m:
        lines.append(
            f"drifted: {len(document['drifted'])} of "
            f"{sum('drift_detected' in s for s in document['features'].values())} features "
            f"(share {m['data_drift_share']:.2f})"
            + (": " + ", ".join(document["drifted"]) if document["drifted"] else "")
        )
    if "prediction_drift_detected" in m:
        state = "DRIFTED" if m["prediction_drift_detected"] else "stable"
        lines.append(f"prediction {state}: p {m['prediction_drift_p_value']:.3g}")
    performance = [
        f"{label} {m[key]:.3f}"
        for key, label in (
            ("accuracy", "accuracy"),
            ("estimated_accuracy", "estimated accuracy"),
            ("reference_accuracy", "reference accuracy"),
        )
        if key in m
    ]
    if performance:
        lines.append(", ".join(performance))
    h = document["health"]
    if h["score"] is not None:
        checks = ", ".join(f"{c} {s:.0f}" for c, s in h["checks"].items())
        lines.append(f"health {h['score']:.0f} {h['level'].upper()} ({checks})")
    return lines


def _datasets(args: Any, fail_on: list[str], limits: tuple[float, float]) -> int:
    from model_health_exporter import drift_gate  # noqa: PLC0415 - numpy and scipy

    try:
        settings = _settings(args, {})
        document = drift_gate.compare_datasets(args.reference, args.current, settings)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"model-health-exporter inspect: config error: {problem}", file=sys.stderr)
        return exit_codes.USAGE
    except drift_gate.GateInputError as exc:
        print(f"model-health-exporter inspect: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    verdicts = drift_gate.dataset_verdicts(document, *limits)
    if args.format == "json":
        print(json.dumps(document | {"gate": _verdict_json(verdicts, fail_on)}, indent=2))
    else:
        lines = _dataset_table(document) + _verdict_lines(verdicts, fail_on)
        print("\n".join(lines))
    return _exit_status(verdicts, fail_on)


def main(argv: Sequence[str]) -> int:
    from model_health_exporter.logging import warnings_to_stderr  # noqa: PLC0415

    parser = _parser()
    args = parser.parse_args(argv)
    pair = (args.reference, args.current)
    if args.models_dirs and any(p is not None for p in pair):
        parser.error("give either MODELS_DIR or --reference and --current, not both")
    if not args.models_dirs and None in pair:
        parser.error("give MODELS_DIR, or both --reference and --current")
    fail_on = _fail_on(args.fail_on, parser)
    quality_max = 0.10 if args.quality_max is None else args.quality_max
    health_min = 70.0 if args.health_min is None else args.health_min
    if not 0 <= quality_max <= 1:
        parser.error(f"--quality-max: {quality_max} is not a ratio in [0, 1]")
    if not 0 <= health_min <= 100:
        parser.error(f"--health-min: {health_min} is not a score in [0, 100]")
    limits = (quality_max, health_min)
    with warnings_to_stderr():  # stdout carries the result
        if args.models_dirs:
            return _models(args, fail_on, limits)
        return _datasets(args, fail_on, limits)
