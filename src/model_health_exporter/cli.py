"""Command line: `run` (the default), `validate`, `check`, `reference build`, `demo`,
`inspect` and `report`.

Flags of `run` are generated from the settings model, so `--help`, the environment
variables and the YAML keys cannot drift apart."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from model_health_exporter import __version__, exit_codes
from model_health_exporter.baselines import BaselineOverrides, merge_baseline
from model_health_exporter.cli_parser import Parser
from model_health_exporter.config import ENV_PREFIX, ConfigError, Settings, load_settings
from model_health_exporter.fsutil import read_capped
from model_health_exporter.quality_gate import compare, gate_passes
from model_health_exporter.schema import (
    BASELINE_FILE,
    METRICS_FILE,
    InvalidFileError,
    Levels,
    ModelMetrics,
    level_order_problem,
    parse_baseline,
    parse_metrics,
)

EXIT_OK: Final = exit_codes.OK
EXIT_FAILED: Final = exit_codes.PROBLEM_FOUND
EXIT_USAGE: Final = exit_codes.USAGE
EXIT_RUNTIME: Final = exit_codes.RUNTIME
_COMMANDS: Final = ("run", "validate", "check", "reference", "demo", "inspect", "report")
_SECTIONS: Final = ("web", "models", "logs", "drift", "health", "state", "log", "push")
_YAML_ONLY: Final = {("push", "models")}  # mappings have no flag
# repeatable flags name one item each
_FLAG_OVERRIDES: Final = {("models", "dirs"): "models.dir", ("logs", "paths"): "logs.path"}
# spelled as Prometheus' own exporters spell it
_FLAG_NAMES: Final = {("web", "config_file"): "web.config.file"}
_MAX_INPUT_BYTES: Final = 64 * 1024 * 1024


def _flag(section: str, field: str) -> str:
    named = _FLAG_NAMES.get((section, field))
    return named or _FLAG_OVERRIDES.get((section, field), f"{section}.{field.replace('_', '-')}")


def _run_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="model-health-exporter",
        commands=_COMMANDS,
        # the flag list below says it all; 38 lines of [--flag VALUE] above it would not
        usage="%(prog)s [run] --models.dir DIR [--config.file PATH] [flags]\n"
        "       %(prog)s {validate,check,reference,demo,inspect,report} --help",
        description="Prometheus exporter for ML model health. Settings come from flags, "
        f"then {ENV_PREFIX}* environment variables (e.g. {ENV_PREFIX}WEB__LISTEN_ADDRESS), "
        "then the YAML file of --config.file.",
        epilog="Other commands: 'model-health-exporter validate PATH...' checks metrics.json "
        "and baseline files; 'model-health-exporter check --baseline A --candidate B' is a "
        "CI quality gate; 'model-health-exporter reference build DATA -o FILE' builds a drift "
        "reference profile; 'model-health-exporter demo --models.dir DIR' writes synthetic "
        "prediction logs to watch; 'model-health-exporter inspect MODELS_DIR' prints what the "
        "daemon would serve, and 'inspect --reference A --current B' is a drift gate; "
        "'model-health-exporter report MODELS_DIR --out DIR' writes trend plots and a "
        "summary. Each has its own --help. Exit status: 0 ok, 1 a problem found (validate, "
        "check, inspect --fail-on), 2 bad flags, configuration or input, 3 a runtime "
        "failure such as the listen port in use.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config.file",
        dest="config_file",
        type=Path,
        metavar="PATH",
        help="YAML configuration file (reloaded on SIGHUP).",
    )
    for section in _SECTIONS:
        model: type[BaseModel] = Settings.model_fields[section].annotation  # type: ignore[assignment]  # always a submodel here
        group = parser.add_argument_group(section)
        for name, info in model.model_fields.items():
            if (section, name) in _YAML_ONLY:
                continue
            flag = _flag(section, name)
            default = info.get_default(call_default_factory=True)
            help_text = info.description or ""
            if default not in (None, []):
                help_text += f" (default: {default})"
            repeat = (section, name) in _FLAG_OVERRIDES
            if repeat:
                help_text += " Repeatable."
            group.add_argument(
                f"--{flag}",
                dest=f"{section}.{name}",
                # a repeatable flag takes one item: --models.dir DIR, not DIRS
                metavar=flag.rpartition(".")[2].upper() if repeat else name.upper(),
                action="append" if repeat else "store",
                help=help_text,
            )
    parser.add_argument(
        "--namespace",
        dest="namespace",
        metavar="PREFIX",
        help="Prefix of every metric name (default: routing_ml).",
    )
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key == "config_file":
            continue
        section, _, name = key.partition(".")
        if name:
            out.setdefault(section, {})[name] = value
        else:
            out[key] = value
    return out


def _config_errors(problems: list[str]) -> int:
    for problem in problems:
        print(f"model-health-exporter: config error: {problem}", file=sys.stderr)
    return EXIT_USAGE


def _run(argv: Sequence[str]) -> int:
    # The daemon takes these signals synchronously in its main thread, so every thread
    # must have them blocked. Threads inherit the mask from their creator, and some are
    # started at import time (numpy's BLAS pool), so block before importing the daemon:
    # a SIGTERM delivered to an unblocked thread would kill the process uncleanly.
    lifecycle = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, lifecycle)
    try:
        return _run_blocked(argv)
    finally:  # for callers in the same process (tests); children inherit masks
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _run_blocked(argv: Sequence[str]) -> int:
    from model_health_exporter.daemon import Daemon  # noqa: PLC0415 - keep validate/check light
    from model_health_exporter.ingress.exposure import push_exposure_problem  # noqa: PLC0415
    from model_health_exporter.logging import configure_logging  # noqa: PLC0415

    args = _run_parser().parse_args(argv)
    config_file: Path | None = getattr(args, "config_file", None)
    overrides = _overrides(args)

    def load() -> Settings:
        return load_settings(overrides, config_file)

    try:
        settings = load()
    except ConfigError as exc:
        return _config_errors(exc.problems)
    if not settings.models.dirs:
        return _config_errors(["models.dirs: no model directory given (--models.dir)"])
    problem = (
        push_exposure_problem(
            settings.web.listen_address,
            auth_configured=settings.web_config.requires_auth,  # read by load_settings
            opted_in=settings.web.push_without_auth,
        )
        if settings.web.enable_push
        else None
    )
    if problem is not None:
        return _config_errors([problem])
    configure_logging(settings.log.level, settings.log.format)
    return Daemon(settings, load).run()


# ---- validate ---------------------------------------------------------------------------


def _files_to_validate(path: Path) -> list[Path]:
    if path.is_dir():
        found = [*path.rglob(METRICS_FILE), *path.rglob(BASELINE_FILE)]
        return sorted(p for p in found if not any(part.startswith(".") for part in p.parts))
    return [path]


def _validate(argv: Sequence[str]) -> int:
    parser = Parser(
        prog="model-health-exporter validate",
        description="Check metrics.json and baseline_metrics.json files (a directory is "
        "searched recursively) and a web configuration file. Prints one line per problem; "
        "exit 1 if a file is invalid, 2 if a path does not exist or holds no such file, "
        "else 0.",
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    parser.add_argument(
        "--web.config.file",
        dest="web_config",
        type=Path,
        metavar="PATH",
        help="A --web.config.file (TLS, basic auth) to check as the exporter would.",
    )
    args = parser.parse_args(argv)
    if not args.paths and args.web_config is None:
        parser.error("give a PATH to check, or --web.config.file")
    problems, checked, missing = 0, 0, 0
    if args.web_config is not None:
        from model_health_exporter.exposition.web_config import (  # noqa: PLC0415 - only here
            load_web_config,
        )

        checked += 1
        try:
            load_web_config(args.web_config)
        except ConfigError as exc:
            print("\n".join(exc.problems))
            problems += 1
    for root in args.paths:
        if not root.exists():
            print(f"{root}: does not exist")
            missing += 1
            continue
        files = _files_to_validate(root)
        if not files:
            print(f"{root}: no {METRICS_FILE} or {BASELINE_FILE} found")
            missing += 1
        for path in files:
            checked += 1
            parse = parse_baseline if path.name == BASELINE_FILE else parse_metrics
            try:
                parse(read_capped(path, _MAX_INPUT_BYTES))
            except InvalidFileError as exc:
                print(f"{path}: {exc.reason}: {exc.message}")
                problems += 1
    if missing:
        return EXIT_USAGE
    if problems:
        return EXIT_FAILED
    print(f"{checked} file(s) valid")
    return EXIT_OK


# ---- check ------------------------------------------------------------------------------


def _read_metrics(path: Path) -> ModelMetrics:
    if path.is_dir():
        path = path / METRICS_FILE
    try:
        return parse_metrics(read_capped(path, _MAX_INPUT_BYTES))
    except InvalidFileError as exc:
        raise ConfigError([f"{path}: {exc.reason}: {exc.message}"]) from None


def _gate_levels(thresholds: Path | None) -> Mapping[str, Levels]:
    """The built-in levels, overlaid with those of a baseline file; raises ConfigError."""
    layers = []
    if thresholds is not None:
        try:
            baseline = parse_baseline(read_capped(thresholds, _MAX_INPUT_BYTES))
        except InvalidFileError as exc:
            raise ConfigError([f"{thresholds}: {exc.reason}: {exc.message}"]) from None
        layers.append(BaselineOverrides.from_file(baseline))
    levels = merge_baseline(*layers).levels
    # Each file is ordered in itself; a file that sets only some levels can still end up
    # on the wrong side of a built-in default it keeps.
    mixed = [p for name, lv in levels.items() if (p := level_order_problem(name, lv))]
    if mixed:
        raise ConfigError(
            [f"{thresholds} with the built-in defaults: {p}; set all levels" for p in mixed]
        )
    return levels


def _check(argv: Sequence[str]) -> int:
    parser = Parser(
        prog="model-health-exporter check",
        description="Quality gate: compare a candidate's metrics.json with a baseline's "
        "against warning/critical thresholds (the built-in defaults, e.g. accuracy warning "
        "0.85 and critical 0.80, or those of --thresholds). "
        "Exit 0 pass, 1 threshold breached, 2 usage or input error.",
    )
    parser.add_argument(
        "--baseline", required=True, type=Path, help="Baseline metrics.json or its version folder."
    )
    parser.add_argument(
        "--candidate",
        required=True,
        type=Path,
        help="Candidate metrics.json or its version folder.",
    )
    parser.add_argument(
        "--thresholds", type=Path, help="baseline_metrics.json with quality_thresholds to use."
    )
    parser.add_argument(
        "--fail-on",
        choices=("warning", "critical"),
        default="warning",
        help="Lowest severity that fails the gate (default: warning).",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: one line per metric and a PASS/FAIL line; json: the same as one object "
        "(default: text).",
    )
    args = parser.parse_args(argv)
    try:
        baseline, candidate = _read_metrics(args.baseline), _read_metrics(args.candidate)
        levels = _gate_levels(args.thresholds)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"model-health-exporter check: {problem}", file=sys.stderr)
        return EXIT_USAGE
    findings = compare(baseline, candidate, levels)
    passed = gate_passes(findings, args.fail_on)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "passed": passed,
                    "fail_on": args.fail_on,
                    "findings": [
                        {
                            "metric": f.metric,
                            "candidate": f.candidate,
                            "baseline": f.baseline,
                            "change_ratio": f.change_ratio,
                            "severity": f.severity,
                            "threshold": f.threshold,
                        }
                        for f in findings
                    ],
                },
                indent=2,
            )
        )
    else:
        for f in findings:
            mark = "ok" if f.severity == "ok" else f.severity.upper()
            print(f"{mark:8} {f.describe()}")
        print(
            "PASS: all metrics within thresholds"
            if passed
            else f"FAIL: a {args.fail_on} or worse threshold is breached"
        )
    return EXIT_OK if passed else EXIT_FAILED


# ---- demo -------------------------------------------------------------------------------


def _demo(argv: Sequence[str]) -> int:
    from model_health_exporter import demo  # noqa: PLC0415 - only this command needs it

    parser = Parser(
        prog="model-health-exporter demo",
        description="Append synthetic predictions and, a few seconds later, feedback to "
        "<version>/predictions/demo.jsonl and <version>/feedback/demo.jsonl of the active "
        "version of every model, and inject drift after a while. Runs until Ctrl-C.",
    )
    parser.add_argument(
        "--models.dir",
        dest="models_dir",
        required=True,
        type=Path,
        metavar="DIR",
        help="Root of the model folders, as given to the exporter.",
    )
    parser.add_argument(
        "--rate", type=float, default=20.0, help="Predictions per second per model (default: 20)."
    )
    parser.add_argument(
        "--drift-after",
        type=float,
        default=180.0,
        metavar="SECONDS",
        help="Inject drift after this many seconds (default: 180).",
    )
    parser.add_argument(
        "--seed", type=int, metavar="N", help="Random seed, for a reproducible stream."
    )
    parser.add_argument(
        "--duration", type=float, metavar="SECONDS", help="Stop after this many seconds."
    )
    parser.add_argument(
        "--stamp-now",
        action="store_true",
        help="First move the generated_at of every metrics.json under --models.dir so the "
        "newest is a day old (for copies of the dated example models; rewrites the files).",
    )
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be positive")
    return demo.run(
        args.models_dir,
        rate=args.rate,
        drift_after=args.drift_after,
        seed=args.seed,
        duration=args.duration,
        stamp=args.stamp_now,
    )


# ---- reference build ------------------------------------------------------------------


def _reference(argv: Sequence[str]) -> int:
    # numpy and scipy load only for this command
    from model_health_exporter.fsutil import atomic_write_bytes  # noqa: PLC0415
    from model_health_exporter.sources import reference as source  # noqa: PLC0415
    from model_health_exporter.stats.reference import build_reference  # noqa: PLC0415

    parser = Parser(
        prog="model-health-exporter reference",
        usage="%(prog)s build DATA -o OUTPUT [options]",
        description="Build a compact reference profile (bins from quantiles, top categories, "
        "calibration) from a training sample, for drift and label-free estimation. Put the "
        f"output next to metrics.json as {source.PROFILE_FILE}.",
    )
    parser.add_argument(
        "action", choices=["build"], metavar="build", help="The action (the only one)."
    )
    parser.add_argument(
        "data",
        type=Path,
        metavar="DATA",
        help="reference.jsonl (prediction-log records, 'actual' holding the label) or a CSV "
        "file with one column per feature (and optional prediction, confidence, actual).",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="Profile to write.")
    parser.add_argument("--bins", type=int, default=20, help="Bins per numeric feature.")
    parser.add_argument("--top-categories", type=int, default=20, help="Per categorical feature.")
    parser.add_argument("--max-features", type=int, default=50, help="Features kept, by name.")
    parser.add_argument("--max-classes", type=int, default=10, help="Classes kept.")
    parser.add_argument("--force", action="store_true", help="Overwrite an existing output.")
    args = parser.parse_args(argv)
    if args.output.exists() and not args.force:
        print(f"{args.output}: exists (use --force to overwrite)", file=sys.stderr)
        return EXIT_USAGE
    try:
        rows = source.read_reference(args.data)
    except source.ReferenceError as exc:
        print(f"{exc}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(rows, source.ReferenceProfileFile):
        print(f"{args.data}: already a profile; give the sample it came from", file=sys.stderr)
        return EXIT_USAGE
    if rows.skipped:
        print(
            f"{args.data}: skipped {rows.skipped} invalid rows (first: {rows.first_problem})",
            file=sys.stderr,
        )
    if not len(rows):
        print(f"{args.data}: no usable rows", file=sys.stderr)
        return EXIT_USAGE
    profile = build_reference(
        rows.source,
        rows.features,
        **rows.columns(),
        n_bins=args.bins,
        top_k=args.top_categories,
        max_features=args.max_features,
        max_classes=args.max_classes,
    )
    try:
        atomic_write_bytes(args.output, json.dumps(profile.to_dict(), indent=1).encode() + b"\n")
    except OSError as exc:
        print(f"{args.output}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_RUNTIME
    calibrated = profile.calibrator is not None and profile.calibrator.calibrated
    print(
        f"{args.output}: {profile.n} rows, {len(profile.features)} features"
        + (f" ({profile.dropped_features} dropped)" if profile.dropped_features else "")
        + (", calibrated" if calibrated else "")
        + (" (truncated to the first rows)" if rows.truncated else "")
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in _COMMANDS else "run"
    rest = argv[1:] if argv and argv[0] in _COMMANDS else argv
    try:
        if command == "validate":
            return _validate(rest)
        if command == "check":
            return _check(rest)
        if command == "demo":
            return _demo(rest)
        if command == "reference":
            return _reference(rest)
        if command == "inspect":
            from model_health_exporter import cli_inspect  # noqa: PLC0415 - only this command

            return cli_inspect.main(rest)
        if command == "report":
            from model_health_exporter import cli_report  # noqa: PLC0415 - only this command

            return cli_report.main(rest)
        return _run(rest)
    except KeyboardInterrupt:
        return exit_codes.INTERRUPTED
    except Exception:  # noqa: BLE001 - any crash: its traceback, and not a "problem found" 1
        traceback.print_exc()
        return exit_codes.RUNTIME
