"""One reference object for every version whose reference says the same: versions
that load identical reference content (the same file copied to each version, or the
same profile saved in the checkpoint) share its profiles and category codes, which
are most of a version's reference memory. An object is released when no version uses
it (weak references)."""

from __future__ import annotations

import hashlib
import threading
import weakref

import msgspec

from model_health_exporter.stats.reference import ModelReference

_by_content: weakref.WeakValueDictionary[bytes, ModelReference] = weakref.WeakValueDictionary()
_lock = threading.Lock()


def shared(reference: ModelReference) -> ModelReference:
    """A reference equal to `reference` already in use, or `reference` itself (now the
    one shared). Equal means equal `to_dict()`: the digest only finds the candidate."""
    content = reference.to_dict()
    key = hashlib.blake2b(msgspec.json.encode(content), digest_size=16).digest()
    with _lock:
        kept = _by_content.get(key)
        if kept is not None and kept.to_dict() == content:
            return kept
        _by_content[key] = reference
        return reference
