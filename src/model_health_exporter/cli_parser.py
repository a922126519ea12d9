"""An argparse parser whose errors are short: the error first, a "did you mean" for a
mistyped flag or command, and a pointer to --help, instead of the whole usage text."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import NoReturn

from model_health_exporter import exit_codes

_UNRECOGNIZED = "unrecognized arguments: "


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: object, commands: Sequence[str] = (), **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # argparse's own keywords
        self._commands = tuple(commands)

    def error(self, message: str) -> NoReturn:
        lines = [f"{self.prog}: error: {message}"]
        lines += self._suggestions(message)
        lines.append(f"Run '{self.prog} --help' for the flags.")
        print("\n".join(lines), file=sys.stderr)
        sys.exit(exit_codes.USAGE)

    def _suggestions(self, message: str) -> list[str]:
        if not message.startswith(_UNRECOGNIZED):
            return []
        flags = [s for action in self._actions for s in action.option_strings]
        out = []
        for word in message.removeprefix(_UNRECOGNIZED).split():
            if word.startswith("-"):
                flag = word.partition("=")[0]
                close = difflib.get_close_matches(flag, flags, n=1, cutoff=0.6)
                if close:
                    out.append(f"{flag}: did you mean {close[0]}?")
            elif close := difflib.get_close_matches(word, self._commands, n=1, cutoff=0.6):
                out.append(f"{word}: did you mean the command '{close[0]}'?")
        return out
