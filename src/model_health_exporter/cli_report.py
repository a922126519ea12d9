"""`model-health-exporter report MODELS_DIR --out DIR`: trend plots across versions and
an HTML and a Markdown summary linking them."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from model_health_exporter import exit_codes
from model_health_exporter.cli_parser import Parser
from model_health_exporter.config import ConfigError, load_settings

EXTRA_HINT: Final = (
    "model-health-exporter report: the plots need matplotlib, which comes with the "
    "'report' extra: pip install 'model-health-exporter[report]'"
)
HTML_FILE: Final = "index.html"
MARKDOWN_FILE: Final = "report.md"


def _parser() -> Parser:
    parser = Parser(
        prog="model-health-exporter report",
        description="Write PNG trend plots across the versions of every model (accuracy "
        "and F1 over generated_at with warning and critical lines, training samples, "
        "training duration, missing data by column) and a summary linking them, "
        f"{HTML_FILE} and {MARKDOWN_FILE} (degradation against the baseline targets, the "
        "newest version compared with the one before, missing data). Needs the 'report' "
        "extra (matplotlib). Exit 0, 2 for bad flags or input or without matplotlib, 3 if "
        "the output cannot be written.",
    )
    parser.add_argument("models_dir", type=Path, metavar="MODELS_DIR")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="Output folder.")
    parser.add_argument(
        "--config.file",
        dest="config_file",
        type=Path,
        metavar="PATH",
        help="The daemon's YAML configuration (layout, baselines, severity bands).",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        from model_health_exporter import report_plots  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        print(f"{EXTRA_HINT} ({exc})", file=sys.stderr)
        return exit_codes.USAGE
    from model_health_exporter import report  # noqa: PLC0415
    from model_health_exporter.daemon import registry_config, severity_bands  # noqa: PLC0415
    from model_health_exporter.logging import warnings_to_stderr  # noqa: PLC0415
    from model_health_exporter.state.counters import LabelledCounter  # noqa: PLC0415
    from model_health_exporter.state.registry import ModelRegistry  # noqa: PLC0415

    if not args.models_dir.is_dir():
        print(f"{args.models_dir}: not a directory", file=sys.stderr)
        return exit_codes.USAGE
    try:
        settings = load_settings({"models": {"dirs": [str(args.models_dir)]}}, args.config_file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"model-health-exporter report: config error: {problem}", file=sys.stderr)
        return exit_codes.USAGE
    registry = ModelRegistry(registry_config(settings), LabelledCounter(), LabelledCounter())
    with warnings_to_stderr():  # stdout says where the report is
        registry.full_scan()
    reports = report.model_reports(list(registry.snapshot.models.values()))
    out: Path = args.out
    bands = severity_bands(settings)
    title = f"Model report: {args.models_dir} ({datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')})"
    try:
        out.mkdir(parents=True, exist_ok=True)
        for r in reports:
            r.plots = report_plots.draw(r, out)
        (out / MARKDOWN_FILE).write_text(report.markdown(reports, title, bands), encoding="utf-8")
        (out / HTML_FILE).write_text(report.html(reports, title, bands), encoding="utf-8")
    except OSError as exc:
        print(f"{out}: cannot write the report: {exc.strerror or exc}", file=sys.stderr)
        return exit_codes.RUNTIME
    plots = sum(len(r.plots) for r in reports)
    print(f"{out / HTML_FILE}: {len(reports)} model(s), {plots} plot(s); also {MARKDOWN_FILE}")
    return exit_codes.OK
