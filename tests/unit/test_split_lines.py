"""Splitting a read into lines: the C-level fast path (no blank or over-long line) and
the general one give what a line-by-line reading gives."""

from __future__ import annotations

import random

import pytest

from model_health_exporter.sources.prediction_logs import _split_lines

PIECES = [b'{"id": 1}', b'{"id": 22, "x": "yyyy"}', b"", b"  ", b"\r", b"x" * 40, b" {}\t"]


def by_hand(
    data: bytes, start: int, cap: int
) -> tuple[list[tuple[bytes, int]], int, int, list[int]]:
    complete, _, _ = data.rpartition(b"\n")
    if b"\n" not in data:
        return [], 0, 0, []
    lines, too_long = [], []
    for number, text in enumerate(complete.split(b"\n"), start=start + 1):
        if len(text) > cap:
            too_long.append(number)
        elif text.strip():
            lines.append((text, number))
    n = complete.count(b"\n") + 1
    return lines, len(complete) + 1, n, too_long


@pytest.mark.parametrize("seed", range(20))
def test_split_equals_reading_line_by_line(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - seeded test data
    weights = [10, 10, 1, 1, 1, 1, 1] if seed % 2 else [10, 10, 0, 0, 0, 0, 0]
    pieces = rng.choices(PIECES, weights=weights, k=rng.randrange(0, 40))
    data = b"\n".join(pieces) + rng.choice([b"", b"\n", b'\n{"partial'])
    start, cap = rng.randrange(0, 100), rng.choice([30, 1000])
    texts, numbers, consumed, n_lines, too_long = _split_lines(data, start, cap)
    assert (list(zip(texts, numbers, strict=True)), consumed, n_lines, too_long) == by_hand(
        data, start, cap
    )
