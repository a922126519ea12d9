#!/usr/bin/env python3
"""Write the rule files, dashboards and Kubernetes PrometheusRule from the jsonnet mixin
(mixin/build.jsonnet), so what users load is exactly what the mixin's _config says.

    .venv/bin/python scripts/gen-mixin.py          # regenerate
    .venv/bin/python scripts/gen-mixin.py --check  # exit 1 if a generated file is stale

Needs the `jsonnet` Python binding (the test extra) and PyYAML."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import _jsonnet  # the `jsonnet` distribution's module
import yaml

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "mixin" / "build.jsonnet"
HEADER = (
    "# Generated from mixin/ (jsonnet) by scripts/gen-mixin.py: do not edit.\n"
    "# Change mixin/*.libsonnet, then run: .venv/bin/python scripts/gen-mixin.py\n"
)
# Rule keys in the order people read them (jsonnet sorts object fields).
_RULE_KEYS = ("alert", "record", "expr", "for", "labels", "annotations")
_ANNOTATION_KEYS = ("summary", "value", "description", "runbook_url")


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _ordered(value: Any) -> Any:
    """Rules (and their annotations) with their keys in reading order, recursively."""
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    if not isinstance(value, dict):
        return value
    keys = list(value)
    if "expr" in value and ("alert" in value or "record" in value):
        keys = [k for k in _RULE_KEYS if k in value] + [k for k in keys if k not in _RULE_KEYS]
    elif "runbook_url" in value:
        keys = [k for k in _ANNOTATION_KEYS if k in value] + [
            k for k in keys if k not in _ANNOTATION_KEYS
        ]
    return {k: _ordered(value[k]) for k in keys}


def render(build: Path = BUILD) -> dict[str, str]:
    """Repository path -> the file's full text."""
    documents: dict[str, Any] = json.loads(
        _jsonnet.evaluate_file(str(build), jpathdir=[str(build.parent)])
    )
    out = {}
    for path, document in documents.items():
        if path.endswith(".json"):
            out[path] = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        else:
            body = yaml.dump(
                _ordered(document), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True
            )
            out[path] = HEADER + body
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    parser.add_argument(
        "--root", type=Path, default=REPO, help="write (or check) under this directory"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, text in render().items():
        path = args.root / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(name)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {name}")
    if args.check and stale:
        print(
            "out of date with mixin/: "
            + ", ".join(stale)
            + "; run .venv/bin/python scripts/gen-mixin.py"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
