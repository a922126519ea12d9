"""A real browser for the page tests: Debian's headless chromium, run once per page
(`--dump-dom`, `--screenshot`) with a fresh profile, killed by its PID (its process
group) if it overruns; no browser is downloaded. Plus a small DOM of the dumped HTML
and a PNG check that needs no imaging library."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = shutil.which("chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def run_chromium(*args: str, timeout: float = 60) -> bytes:
    """chromium with `args` on a new profile; its stdout. Killed with its children (the
    process group it leads) if it has not finished in `timeout` seconds."""
    if CHROMIUM is None:
        raise AssertionError("chromium is not installed: scripts/install-system-deps.sh does it")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own group: the renderers go with it
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if proc.returncode != 0:
        raise AssertionError(f"chromium {args} exited {proc.returncode}")
    return out


def dump_dom(url: str, wait_ms: int = 0) -> Element:
    """The DOM after the page's scripts ran, and after `wait_ms` of (virtual) time: its
    timers fire and their fetches complete, without waiting in real time."""
    budget = (f"--virtual-time-budget={wait_ms}",) if wait_ms else ()
    return parse_html(run_chromium(*budget, "--dump-dom", url).decode())


def screenshot(url: str, path: Path, width: int, height: int) -> Path:
    run_chromium(f"--window-size={width},{height}", f"--screenshot={path}", url)
    return path


# ---- a small DOM --------------------------------------------------------------------------

_VOID = frozenset(
    "area base br col embed hr img input link meta source track wbr".split()  # noqa: SIM905 - a list of words
)


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Element]:
        """Descendants (and self) with `tag` whose attributes include `attrs` (a `class_`
        value must be one of the element's classes)."""
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        out = []
        for element in self.iter():
            if tag is not None and element.tag != tag:
                continue
            ok = True
            for key, value in wanted.items():
                have = element.attrs.get(key)
                ok = (
                    (have is not None and value in have.split())
                    if key == "class"
                    else have == value
                )
                if not ok:
                    break
            if ok:
                out.append(element)
        return out

    def find(self, tag: str | None = None, **attrs: str) -> Element:
        found = self.find_all(tag, **attrs)
        if not found:
            raise AssertionError(f"no <{tag}> with {attrs}")
        return found[0]

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self._stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self._stack[-1].children.append(element)
        if tag not in _VOID:
            self._stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._stack) - 1, 0, -1):
            if self._stack[i].tag == tag:
                del self._stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self._stack[-1].children.append(data)


def parse_html(text: str) -> Element:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root


# ---- PNG ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PngInfo:
    width: int
    height: int
    distinct_bytes: int  # in the decompressed image data: a blank image has very few
    nonzero_share: float  # of the filtered scanline bytes: a flat image is mostly zeros


def png_info(path: Path) -> PngInfo:
    """Decodes the chunks of a PNG (signature, IHDR, IDAT, IEND, CRCs) with zlib only."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError(f"{path} is not a PNG")
    pos, chunks, idat = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise AssertionError(f"{path}: bad CRC in {kind!r}")
        chunks.append(kind)
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    if chunks[0] != b"IHDR" or chunks[-1] != b"IEND":
        raise AssertionError(f"{path}: chunks {chunks}")
    width, height = struct.unpack(">II", data[16:24])
    pixels = zlib.decompress(idat)
    return PngInfo(
        width,
        height,
        len(set(pixels)),
        sum(1 for b in pixels[:: max(1, len(pixels) // 200_000)] if b)
        / len(pixels[:: max(1, len(pixels) // 200_000)]),
    )
