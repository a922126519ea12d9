"""The typed msgspec decode in `records.parse_line` is only a fast way to apply the rules
of `records.parse_dict_line` (orjson's dict, checked by hand): over many combinations of
valid and invalid field values, both must give the same record, or the same reason and
message."""

from __future__ import annotations

import random

import pytest

from model_health_exporter.records import (
    Feedback,
    InvalidRecordError,
    Prediction,
    parse_dict_line,
    parse_line,
    parse_lines,
)

# Raw JSON texts per field; None leaves the field out.
FIELDS: dict[str, list[str | None]] = {
    "id": [None, "null", '"a1"', "7", "-3", "true", "1.5", '{"n": 1}', str(2**70), str(2**63)],
    "prediction": [
        None, "null", '"a"', '"b"', '"1"', "1", "0", "2.5", "-0.0", "1E2", "true", "false",
        "[1]", '{"x": 1}', str(2**65), "1e400", "1e100", "-1.0000001e100", str(10**101),
    ],
    "probabilities": [
        None, "null", '{"a": 0.8, "b": 0.2}', '{"1": 0.9, "0": 0.1}', '{"true": 1}', "{}",
        '{"a": 1.5}', '{"a": true}', "[0.5]", '{"a": -0.1}', '{"a": 1, "b": 0}', '"a"',
    ],
    "confidence": [None, "null", "0.9", "1", "0", "2", "-0.5", '"x"', "true", "1e-400"],
    "latency_ms": [
        None, "null", "12", "0", "-3", '"fast"', "1e308", "false", "86400000", "86400000.5",
    ],
    "latency_seconds": [None, "null", "0.003", "-1", "true", "7", "86400", "86400.01", "1e308"],
    "error": [None, "null", '"Timeout"', "3", '""', "[]"],
    "actual": [None, "null", '"a"', "4.5", "true", '{"a": 1}', "2", str(2**64), "-1e200", "1e100"],
    "model": [None, '"m"', "3", "true", "null"],
    "version": [None, '"v1"', "2", "1.0"],
    "features": [
        None, "null", '{"x": 1, "s": "US", "n": null, "b": true, "f": 2.5}', "[1, 2]",
        '{"x": [1]}', f'{{"x": {2**70}}}', '{"x": "M\\u00fcnchen", "y": "Z\u00fcrich"}', "{}",
        '{"x": {"y": 1}}', f'{{"x": {2**63}}}', '{"x": 1e308, "s": "a"}', f'{{"x": -{10**101}}}',
    ],
    "timestamp": [None, '"2026-11-22T10:00:00Z"', "1764000000.5", '{"odd": [1, 2]}'],
}  # fmt: skip


def outcome(parse: object, line: bytes) -> tuple[object, ...]:
    try:
        result = parse(line)  # type: ignore[operator]  # one of the two parsers
    except InvalidRecordError as exc:
        return ("error", exc.reason, exc.message)
    assert isinstance(result, Prediction | Feedback)
    return ("ok", type(result).__name__, result)


def random_line(rng: random.Random) -> bytes:
    parts = []
    for name, values in FIELDS.items():
        if rng.random() < 0.5:  # about half the fields, in a random mix
            continue
        text = rng.choice(values)
        if text is not None:
            parts.append(f'"{name}": {text}')
    rng.shuffle(parts)
    return ("{" + ", ".join(parts) + "}").encode()


def test_typed_decode_agrees_with_the_rules_on_random_records() -> None:
    rng = random.Random(20261122)  # noqa: S311 - seeded test data
    accepted = 0
    for _ in range(30_000):
        line = random_line(rng)
        fast, rules = outcome(parse_line, line), outcome(parse_dict_line, line)
        assert fast == rules, line
        accepted += fast[0] == "ok"
    assert accepted > 1000  # the mix reaches the fast path, not only the errors


@pytest.mark.parametrize(
    "line",
    [
        b'{"id": "r", "prediction": "a", "probabilities": {"a": 0.6, "b": 0.4}, "latency_ms": 3}',
        b'{"id": 5, "prediction": 1, "probabilities": {"0": 0.3, "1": 0.7}}',
        b'{"id": "r", "prediction": true, "confidence": 0.5}',
        b'{"prediction": 3, "latency_seconds": 0.5}',
        b'{"id": "x", "prediction": null, "error": "Timeout", "latency_ms": 9}',
        b'{"id": "r", "actual": "a", "model": "m", "version": 3}',
        b'{"id": 1, "actual": false}',
        b'{"prediction": "a", "features": {"city": "M\xc3\xbcnchen"}}',
        b'{"prediction": "a", "note": "\xff\xfe"}',  # invalid UTF-8 in an ignored field
        b'{"prediction": "a", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"prediction": "a", "prediction": "b"}',
        b'{"prediction": "a", "features": {"q": 18446744073709551615}}',
        b'{"prediction": "a", "id": "\\ud800"}',
        b"[1, 2]",
        b"null",
        b'"text"',
        b'{"prediction": ',
        b'\xef\xbb\xbf{"prediction": "a"}',
        b'{"prediction": "a"} x',
    ],
)
def test_typed_decode_agrees_with_the_rules_on_edge_cases(line: bytes) -> None:
    assert outcome(parse_line, line) == outcome(parse_dict_line, line)


def test_a_number_overflowing_a_double_in_an_ignored_field_is_accepted() -> None:
    """The one known difference: the typed decode skips fields it does not know without
    converting their numbers, so 1e400 there no longer makes the line invalid JSON
    (orjson refuses to read it as infinity)."""
    line = b'{"prediction": "a", "extra": 1e400}'
    assert outcome(parse_dict_line, line)[:2] == ("error", "invalid_json")
    assert parse_line(line) == Prediction(None, "a", None, None, None, None, None)


def _each(lines: list[bytes]) -> tuple[list[object], list[tuple[int, str, str]]]:
    """What parsing the lines one by one makes of them: the reference for parse_lines."""
    records: list[object] = []
    rejected: list[tuple[int, str, str]] = []
    for i, line in enumerate(lines):
        try:
            records.append(parse_line(line))
        except InvalidRecordError as exc:
            rejected.append((i, exc.reason, exc.message))
    return records, rejected


def _chunk(lines: list[bytes]) -> tuple[list[object], list[tuple[int, str, str]]]:
    records, rejected = parse_lines(lines)
    return list(records), [(i, e.reason, e.message) for i, e in rejected]


VALID = [
    b'{"id": "r1", "prediction": "a", "probabilities": {"a": 0.6, "b": 0.4}}',
    b'{"id": "r2", "prediction": 1.5, "latency_ms": 3}',
    b'{"id": "r1", "actual": "b"}',
    b'{"id": "r3", "prediction": null, "error": "Timeout"}',
]


@pytest.mark.parametrize(
    "odd",
    [
        # two values on one line, and one value spread over two lines: as many values as
        # lines, but shifted (what a decode of the whole chunk at once would have to catch)
        [b'{"prediction": "a"} {"prediction": "b"}', b'{"prediction": "c", "x": [1,', b"2]}"],
        [b'{"prediction": "a"}{"prediction": "b"}', b'{"prediction": "c", "f": {"x": 1', b"}}"],
        [b'{"prediction": "a"}{"prediction": "b"}'],
        [b'{"prediction": "a", "features": {"x": 1', b"}}"],
        [b' {"prediction": "a"}', b'{"prediction": "b"}\r', b'{"prediction": "c"}\t'],
        [b'{"prediction": "a"}\r'],  # CRLF logs
        [b'{"prediction": "a", "features": {"city": "M\xc3\xbcnchen"}}'],
        [b'{"prediction": "a", "note": "\xff\xfe"}'],
        [b'{"prediction": 2.5, "confidence": 0.9}'],  # valid types, rejected by the rules
        [b'{"prediction": "a", "confidence": 2}'],  # rejected by the typed decode
        [b"[1, 2]", b"null", b"7"],
        [b'{"prediction": '],
        [b"   "],
    ],
)
def test_a_chunk_parses_as_its_lines_one_by_one(odd: list[bytes]) -> None:
    lines = [*VALID, *odd, *VALID]
    assert _chunk(lines) == _each(lines)


def test_random_chunks_parse_as_their_lines_one_by_one() -> None:
    rng = random.Random(20261201)  # noqa: S311 - seeded test data
    for _ in range(300):
        lines = [rng.choice(VALID) for _ in range(rng.randint(1, 40))]
        if rng.random() < 0.5:  # half the chunks with a random (often invalid) line
            lines.insert(rng.randrange(len(lines) + 1), random_line(rng))
        assert _chunk(lines) == _each(lines), lines


@pytest.mark.parametrize("bad_share", [0.05, 0.5, 1.0])
def test_chunks_with_many_bad_lines_parse_as_their_lines_one_by_one(bad_share: float) -> None:
    """Past a number of lines the block's C-level decode fails on, the rest of the
    block is decoded one line at a time: either way, as the lines one by one."""
    rng = random.Random(20261203)  # noqa: S311 - seeded test data
    lines = [
        random_line(rng) if rng.random() < bad_share else rng.choice(VALID) for _ in range(400)
    ]
    assert _chunk(lines) == _each(lines)
