"""Where the model directories are and what is in them: listing, stat signatures and
active-version markers. Layouts:

    flat:   <root>/<version>/metrics.json          (model name from config or the root)
    nested: <root>/<model>/<version>/metrics.json
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from model_health_exporter.schema import BASELINE_FILE, METRICS_FILE

Layout = Literal["flat", "nested"]

ACTIVE_FILE: Final = "ACTIVE"
ACTIVE_LINKS: Final = ("current", "active", "production")
MARKER_NAMES: Final = frozenset({ACTIVE_FILE, *ACTIVE_LINKS})
_MAX_MARKER_BYTES: Final = 4096


@dataclass(frozen=True, slots=True)
class FileSignature:
    """Changes whenever a file is replaced or rewritten in place."""

    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


@dataclass(frozen=True, slots=True)
class ModelDir:
    name: str
    path: Path
    layout: Layout


@dataclass(frozen=True, slots=True)
class ActiveMarker:
    version: str | None  # None when the marker exists but names nothing usable
    source: str  # "ACTIVE" or the symlink's name
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class ModelListing:
    model: ModelDir
    versions: dict[str, Path]  # version name -> metrics.json path
    marker: ActiveMarker | None
    baseline_path: Path | None


def file_signature(path: Path) -> FileSignature | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return FileSignature(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _subdirs(path: Path) -> list[Path]:
    try:
        entries = list(os.scandir(path))
    except OSError:
        return []
    out = []
    for entry in entries:
        if entry.name.startswith(".") or entry.name in MARKER_NAMES:
            continue
        try:
            if entry.is_dir():
                out.append(Path(entry.path))
        except OSError:
            continue
    return sorted(out)


def detect_layout(root: Path) -> Layout | None:
    """flat if a child of `root` holds metrics.json, nested if a grandchild does,
    None while the root has neither (an empty or not yet populated root)."""
    children = _subdirs(root)
    if any(os.path.lexists(c / METRICS_FILE) for c in children):
        return "flat"
    if any(os.path.lexists(g / METRICS_FILE) for c in children for g in _subdirs(c)):
        return "nested"
    return None


def discover_models(root: Path, layout: Layout, default_name: str | None) -> list[ModelDir]:
    if layout == "flat":
        return [ModelDir(default_name or root.resolve().name, root, "flat")]
    return [ModelDir(child.name, child, "nested") for child in _subdirs(root)]


def read_active_marker(model_path: Path) -> ActiveMarker | None:
    """The active version named by an `ACTIVE` file (first line) or a
    `current`/`active`/`production` symlink, in that order of precedence."""
    active_file = model_path / ACTIVE_FILE
    if active_file.is_file():
        try:
            with active_file.open("rb") as f:
                raw = f.read(_MAX_MARKER_BYTES)
            lines = raw.decode("utf-8").strip().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            return ActiveMarker(None, ACTIVE_FILE, f"unreadable: {exc}")
        name = lines[0].strip() if lines else ""
        return ActiveMarker(name or None, ACTIVE_FILE, None if name else "empty file")
    for link_name in ACTIVE_LINKS:
        link = model_path / link_name
        if link.is_symlink():
            try:
                target = link.readlink()
            except OSError as exc:
                return ActiveMarker(None, link_name, f"unreadable link: {exc}")
            return ActiveMarker(target.name or None, link_name)
    return None


def list_model(model: ModelDir) -> ModelListing:
    versions = {d.name: d / METRICS_FILE for d in _subdirs(model.path)}
    versions = {name: p for name, p in versions.items() if os.path.lexists(p)}
    baseline = model.path / BASELINE_FILE
    return ModelListing(
        model=model,
        versions=versions,
        marker=read_active_marker(model.path),
        baseline_path=baseline if baseline.exists() else None,
    )
