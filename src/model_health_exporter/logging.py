"""Structured logging: JSON lines on stdout when it is not a terminal (or when asked),
key=value lines otherwise, coloured only on a terminal (and without NO_COLOR set)."""

from __future__ import annotations

import logging as stdlib_logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, TextIO

import structlog

_LEVELS = {
    "debug": stdlib_logging.DEBUG,
    "info": stdlib_logging.INFO,
    "warning": stdlib_logging.WARNING,
    "error": stdlib_logging.ERROR,
}


def configure_logging(
    level: Literal["debug", "info", "warning", "error"] = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream: TextIO | None = None,
) -> None:
    """`stream`: where log lines go (default stdout; commands whose output is on stdout
    log to stderr)."""
    stream = sys.stdout if stream is None else stream
    terminal = stream.isatty()
    use_json = fmt == "json" or (fmt == "auto" and not terminal)
    # Escape codes in a file or a journal are noise: colour only what a person watches.
    colors = terminal and not os.environ.get("NO_COLOR")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=colors)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


@contextmanager
def warnings_to_stderr() -> Iterator[None]:
    """For a command whose result is on stdout: warnings and errors as console lines on
    stderr while it runs, then the logging configuration as it was (a command may run in
    a process that logs otherwise, e.g. a test session)."""
    previous = structlog.get_config()
    configure_logging("warning", "console", stream=sys.stderr)
    try:
        yield
    finally:
        structlog.configure(**previous)
