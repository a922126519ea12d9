"""Exit statuses of the daemon and of every command (the README lists them)."""

from __future__ import annotations

from typing import Final

OK: Final = 0
PROBLEM_FOUND: Final = 1
"""The command did its job and found a problem: an invalid file (`validate`), a breached
threshold (`check`), a failed `--fail-on` check (`inspect`)."""
USAGE: Final = 2
"""Bad flags, configuration or input files (an unusable checkpoint too). Running again
will not help, so the systemd unit does not restart on it."""
RUNTIME: Final = 3
"""The environment stopped the work: the listen port is in use, an output file cannot be
written, an unexpected error. May succeed later."""
INTERRUPTED: Final = 130
"""Ctrl-C, as shells report SIGINT."""
