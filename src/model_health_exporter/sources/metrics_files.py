"""Where the model directories are and what is in them: listing, stat signatures and
active-version markers. Layouts:

    flat:   <root>/<version>/metrics.json          (model name from config or the root)
    nested: <root>/<model>/<version>/metrics.json

Folder names must be UTF-8 (they become label values); others are listed apart. A
model or version folder that resolves outside the configured roots (a symlink leading
out) is listed apart too, unless the caller allows it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from model_health_exporter.schema import BASELINE_FILE, METRICS_FILE

Layout = Literal["flat", "nested"]

ACTIVE_FILE: Final = "ACTIVE"
ACTIVE_LINKS: Final = ("current", "active", "production")
MARKER_NAMES: Final = frozenset({ACTIVE_FILE, *ACTIVE_LINKS})
_MAX_MARKER_BYTES: Final = 4096


class DirectoryError(Exception):
    """A folder that exists but cannot be listed; `reason` is an error-counter label."""

    def __init__(
        self, path: Path, reason: Literal["permission_denied", "unreadable"], message: str
    ) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = reason
        self.message = message


def _directory_error(path: Path, exc: OSError) -> DirectoryError:
    denied = exc.errno in (errno.EACCES, errno.EPERM)
    return DirectoryError(
        path, "permission_denied" if denied else "unreadable", exc.strerror or str(exc)
    )


def is_utf8_name(name: str) -> bool:
    """False for a name whose bytes are not UTF-8 (Python keeps them as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_path(path: Path) -> str:
    """`path` for log lines and messages, with bytes that are not UTF-8 as `\\xff`."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass(frozen=True, slots=True)
class Containment:
    """Which paths may be read: those resolving inside the configured roots, or any
    path when following symlinks out of them is allowed."""

    real_roots: tuple[str, ...]
    follow_external: bool = False

    @classmethod
    def of(cls, roots: Sequence[Path], follow_external: bool = False) -> Containment:
        return cls(tuple(os.path.realpath(r) for r in roots), follow_external)

    def allows(self, path: Path) -> bool:
        if self.follow_external:
            return True
        real = os.path.realpath(path)
        roots = self.real_roots
        return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots)

    def allows_child(self, path: Path) -> bool:
        """`allows` for an entry of a folder already allowed: only a symlink can lead
        out, so the others cost one lstat instead of one per path component."""
        # os.path.islink: False, not PermissionError, in a folder that cannot be searched
        return self.follow_external or not os.path.islink(path) or self.allows(path)  # noqa: PTH114


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
    reason: str = "unreadable"  # error-counter label of the problem


@dataclass(frozen=True, slots=True)
class ModelListing:
    model: ModelDir
    versions: dict[str, Path]  # version name -> metrics.json path
    marker: ActiveMarker | None
    baseline_path: Path | None
    not_utf8: tuple[Path, ...] = ()  # version folders skipped: their name is not UTF-8
    outside: tuple[Path, ...] = ()  # version folders skipped: they resolve outside the roots


def file_signature(path: Path) -> FileSignature | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return FileSignature(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _subdirs(path: Path, strict: bool = True) -> list[Path]:
    """Sub-folders of `path` (none if it vanished). A folder that exists but cannot be
    listed raises DirectoryError, or (not `strict`) counts as empty."""
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        if strict:
            raise _directory_error(path, exc) from None
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


def _may_hold_metrics(version_dir: Path) -> bool:
    """Whether `version_dir` holds metrics.json, or may: a folder that cannot be
    searched counts, so that its version is reported rather than silently gone."""
    try:
        os.lstat(version_dir / METRICS_FILE)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True


def detect_layout(root: Path) -> Layout | None:
    """flat if a child of `root` holds metrics.json, nested if a grandchild does,
    None while the root has neither (an empty or not yet populated root). Raises
    DirectoryError if the root itself cannot be listed."""
    children = _subdirs(root)
    if any(os.path.lexists(c / METRICS_FILE) for c in children):
        return "flat"
    grandchildren = (g for c in children for g in _subdirs(c, strict=False))
    if any(os.path.lexists(g / METRICS_FILE) for g in grandchildren):
        return "nested"
    return None


def discover_models(root: Path, layout: Layout, default_name: str | None) -> list[ModelDir]:
    """Raises DirectoryError if the root cannot be listed."""
    if layout == "flat":
        return [ModelDir(default_name or root.resolve().name, root, "flat")]
    return [ModelDir(child.name, child, "nested") for child in _subdirs(root)]


def read_active_marker(
    model_path: Path, containment: Containment | None = None
) -> ActiveMarker | None:
    """The active version named by an `ACTIVE` file (first line) or a
    `current`/`active`/`production` symlink, in that order of precedence. Only the
    name a symlink points to is used, so those may point anywhere; an ACTIVE file is
    read only if `containment` allows it."""
    active_file = model_path / ACTIVE_FILE
    if active_file.is_file():
        if containment is not None and not containment.allows_child(active_file):
            return ActiveMarker(
                None, ACTIVE_FILE, "resolves outside the models directories", "outside_root"
            )
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


def list_model(model: ModelDir, containment: Containment | None = None) -> ModelListing:
    """Raises DirectoryError if the model folder cannot be listed or searched."""
    candidates = [d for d in _subdirs(model.path) if _may_hold_metrics(d)]
    not_utf8 = tuple(d for d in candidates if not is_utf8_name(d.name))
    outside = tuple(
        d
        for d in candidates
        if containment is not None and d not in not_utf8 and not containment.allows_child(d)
    )
    skipped = {*not_utf8, *outside}
    baseline = model.path / BASELINE_FILE
    try:
        marker = read_active_marker(model.path, containment)
        has_baseline = baseline.exists()
    except OSError as exc:  # the folder lists but cannot be searched
        raise _directory_error(model.path, exc) from None
    return ModelListing(
        model=model,
        versions={d.name: d / METRICS_FILE for d in candidates if d not in skipped},
        marker=marker,
        baseline_path=baseline if has_baseline else None,
        not_utf8=not_utf8,
        outside=outside,
    )
