"""Fast /metrics for many model versions: each model's part of each family is rendered
once, by prometheus_client's own encoder, and kept until that model's view changes.

A scrape then only joins cached text, so its cost no longer grows with a per-sample
formatting step (about 10 us a sample here, 0.3 s for 1,000 versions), and a change to
one model re-renders only that model. The output is byte-for-byte what
prometheus_client renders from `ModelCollector` (a test holds the two equal).
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from model_health_exporter.exposition.collector import model_families
from model_health_exporter.state.registry import ModelView, Snapshot

Encoder = Callable[[Collector], bytes]
_EOF = b"# EOF\n"


class _Families(Collector):
    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _encode(encoder: Encoder, families: Sequence[Metric]) -> bytes:
    text = encoder(_Families(families))
    # OpenMetrics ends every exposition with "# EOF"; the parts are joined before the
    # exporter's own metrics, whose encoding ends it once.
    return text.removesuffix(_EOF)


@dataclass(frozen=True, slots=True)
class _Format:
    encoder: Encoder
    headers: tuple[bytes, ...]  # "# HELP"/"# TYPE" of each family, in order
    sample_names: tuple[frozenset[str], ...]  # what `name[]` matches, per family


class ModelExposition:
    """Renders the model families of a snapshot; safe to call from several threads."""

    def __init__(self, namespace: str) -> None:
        self._namespace = namespace
        self._lock = threading.Lock()
        self._formats: dict[str, _Format] = {}
        # id(view) -> (view, content type -> rendered samples per family); the view is
        # kept so that its id cannot be reused while the entry exists.
        self._chunks: dict[int, tuple[ModelView, dict[str, tuple[bytes, ...]]]] = {}
        self._last: tuple[Snapshot, str, bytes, bytes | None] | None = None

    def render(
        self,
        snapshot: Snapshot,
        encoder: Encoder,
        content_type: str,
        names: frozenset[str] | None = None,
        compress: bool = False,
    ) -> bytes:
        """The model families of `snapshot`, restricted to sample `names` if given,
        gzip-compressed if asked (a gzip member: it may be followed by others)."""
        with self._lock:
            if names is None and self._last is not None:
                last_snapshot, last_type, text, gz = self._last
                if last_snapshot is snapshot and last_type == content_type:
                    if not compress:
                        return text
                    if gz is None:
                        gz = gzip.compress(text, compresslevel=1)
                        self._last = (snapshot, content_type, text, gz)
                    return gz
            fmt = self._format(encoder, content_type)
            chunks = [
                self._model_chunks(model, fmt, content_type) for model in snapshot.models.values()
            ]
            if names is None:
                self._evict(snapshot)
            parts = []
            for index, header in enumerate(fmt.headers):
                if names is not None and not (fmt.sample_names[index] & names):
                    continue
                parts.append(header)
                parts.extend(model[index] for model in chunks)
            text = b"".join(parts)
            if names is None:
                self._last = (snapshot, content_type, text, None)
        if compress:
            return gzip.compress(text, compresslevel=1)
        return text

    def _format(self, encoder: Encoder, content_type: str) -> _Format:
        fmt = self._formats.get(content_type)
        if fmt is None:
            empty = list(model_families(self._namespace, ()))
            fmt = _Format(
                encoder,
                tuple(_encode(encoder, [family]) for family in empty),
                tuple(frozenset({f.name + "_info" if f.type == "info" else f.name}) for f in empty),
            )
            self._formats[content_type] = fmt
        return fmt

    def _model_chunks(self, model: ModelView, fmt: _Format, content_type: str) -> tuple[bytes, ...]:
        entry = self._chunks.get(id(model))
        if entry is None or entry[0] is not model:
            entry = (model, {})
            self._chunks[id(model)] = entry
        chunks = entry[1].get(content_type)
        if chunks is None:
            families = list(model_families(self._namespace, (model,)))
            chunks = tuple(
                _encode(fmt.encoder, [family])[len(header) :]
                for family, header in zip(families, fmt.headers, strict=True)
            )
            entry[1][content_type] = chunks
        return chunks

    def _evict(self, snapshot: Snapshot) -> None:
        live = {id(model) for model in snapshot.models.values()}
        for key in [k for k in self._chunks if k not in live]:
            del self._chunks[key]
