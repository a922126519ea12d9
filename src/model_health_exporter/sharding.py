"""Shards of models: `--models.shard=i/n` makes an instance own the models whose stable
hash falls in shard i of n, so n instances together export what one would, each model
exactly once (docs/scaling.md).

The hash must be the same in every process, on every machine and in every Python
release, so it is SHA-256 of the model name (UTF-8), never Python's salted `hash()`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

_SPEC_RE: Final = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
# Shards beyond this would leave most instances empty with any real model count.
MAX_SHARDS: Final = 1024


@lru_cache(maxsize=65536)  # logs outside the version folders ask once per record
def shard_of(model: str, count: int) -> int:
    """The shard (0 <= shard < count) that owns `model`: the first 8 bytes of the SHA-256
    of its UTF-8 name, big-endian, modulo `count`."""
    digest = hashlib.sha256(model.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` of `count`; `Shard(0, 1)` (the default) owns every model."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ValueError(f"{self}: the shard count must be between 1 and {MAX_SHARDS}")
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"{self}: the shard index must be between 0 and {self.count - 1} "
                "(shards are numbered from 0)"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`i/n` as in `--models.shard=1/4`. Raises ValueError naming what is wrong."""
        match = _SPEC_RE.fullmatch(text)
        if match is None:
            raise ValueError(
                f"{text!r} is not i/n (shard index / shard count, both integers, e.g. 0/2)"
            )
        return cls(int(match[1]), int(match[2]))

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def owns(self, model: str) -> bool:
        return self.count == 1 or shard_of(model, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
