"""The per-feature statistics of a window summary (feature -> statistic -> value), held
compactly.

A summary keeps about ten statistics for each of a version's features, and the ingester
holds a summary per version (two while a refresh replaces them). As a dict of floats per
feature that was about 540 bytes a feature, 11 KB a version with 20 features, in small
objects that stay with the Python allocator once the next refresh frees them. Here all
the values of a summary are one array of doubles, and the names are tuples shared by
every table with the same features or statistics: about 2.4 KB a version. A feature's
row is read through a small view made on access."""

from __future__ import annotations

from array import array
from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from itertools import accumulate, repeat
from typing import Final

_MAX_LAYOUTS: Final = 4096
"""Distinct sets of names remembered for sharing. A window's statistics come from a fixed
list, so only a few dozen sets of statistics occur, and a set of features per model; past
the bound a new set is simply not shared."""

_Layout = tuple[tuple[str, ...], dict[str, int]]
_layouts: dict[tuple[str, ...], _Layout] = {}


def _layout(names: tuple[str, ...]) -> _Layout:
    """The names and their positions, one object for every caller with the same names."""
    layout = _layouts.get(names)
    if layout is None:
        layout = (names, {name: i for i, name in enumerate(names)})
        if len(_layouts) < _MAX_LAYOUTS:
            _layouts[names] = layout
    return layout


class FeatureTable(Mapping[str, Mapping[str, float]]):
    """A read-only mapping of feature name to its statistics (a read-only mapping of
    statistic name to a float), in the order given.

    Equal to another table with the same names in the same order and equal values, a NaN
    equal to itself (so two summaries that computed the same numbers compare equal); to
    any other mapping, item by item as dicts are."""

    __slots__ = ("_features", "_rows", "_starts", "_values")

    def __init__(self, features: Mapping[str, Mapping[str, float | None]]) -> None:
        """`features` with each None value left out."""
        rows = [{k: v for k, v in stats.items() if v is not None} for stats in features.values()]
        self._features = _layout(tuple(features))
        self._rows = tuple(_layout(tuple(row)) for row in rows)
        self._starts = array("l", accumulate(map(len, rows), initial=0))
        self._values = array("d", [v for row in rows for v in row.values()])

    def __getitem__(self, feature: str) -> FeatureStats:
        return FeatureStats(self, self._features[1][feature])

    def __iter__(self) -> Iterator[str]:
        return iter(self._features[0])

    def __len__(self) -> int:
        return len(self._features[0])

    def __contains__(self, feature: object) -> bool:
        return feature in self._features[1]

    def items(self) -> ItemsView[str, Mapping[str, float]]:
        return _TableItems(self)

    def values(self) -> ValuesView[Mapping[str, float]]:
        return _TableValues(self)

    def __eq__(self, other: object) -> bool:
        if (
            isinstance(other, FeatureTable)
            and self._features[0] == other._features[0]
            and all(a[0] == b[0] for a, b in zip(self._rows, other._rows, strict=True))
        ):
            mine, theirs = self._values, other._values
            return mine == theirs or mine.tobytes() == theirs.tobytes()
        return super().__eq__(other)  # item by item, as dicts compare

    __hash__ = None  # type: ignore[assignment]  # as dict: a mapping is not hashed

    def __repr__(self) -> str:
        return f"FeatureTable({ {name: dict(stats) for name, stats in self.items()}!r})"

    def __reduce__(self) -> tuple[type[FeatureTable], tuple[dict[str, dict[str, float]]]]:
        return FeatureTable, ({name: dict(stats) for name, stats in self.items()},)


class FeatureStats(Mapping[str, float]):
    """One feature's row of a `FeatureTable`: statistic name -> value."""

    __slots__ = ("_all", "_names", "_positions", "_start")

    def __init__(self, table: FeatureTable, row: int) -> None:
        # looked up once: a reader of a row asks for several of its statistics
        self._names, self._positions = table._rows[row]
        self._start, self._all = table._starts[row], table._values

    def __getitem__(self, key: str) -> float:
        return self._all[self._start + self._positions[key]]

    def get(self, key: str, default: float | None = None) -> float | None:  # type: ignore[override]  # one signature for Mapping.get's overloads
        at = self._positions.get(key)
        return default if at is None else self._all[self._start + at]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, key: object) -> bool:
        return key in self._positions

    def items(self) -> ItemsView[str, float]:
        return _RowItems(self)

    def values(self) -> ValuesView[float]:
        return _RowValues(self)

    def _values(self) -> array[float]:
        return self._all[self._start : self._start + len(self._names)]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FeatureStats) and self._names == other._names:
            mine, theirs = self._values(), other._values()
            return mine == theirs or mine.tobytes() == theirs.tobytes()
        return super().__eq__(other)  # item by item, as dicts compare

    __hash__ = None  # type: ignore[assignment]  # as dict

    def __repr__(self) -> str:
        return f"FeatureStats({dict(self.items())!r})"

    def __reduce__(self) -> tuple[type[dict[str, float]], tuple[dict[str, float]]]:
        return dict, (dict(self.items()),)


class _TableItems(ItemsView[str, Mapping[str, float]]):
    _mapping: FeatureTable

    def __iter__(self) -> Iterator[tuple[str, Mapping[str, float]]]:
        table = self._mapping
        names = table._features[0]
        return zip(names, map(FeatureStats, repeat(table), range(len(names))), strict=True)


class _TableValues(ValuesView[Mapping[str, float]]):
    _mapping: FeatureTable

    def __iter__(self) -> Iterator[Mapping[str, float]]:
        table = self._mapping
        return map(FeatureStats, repeat(table), range(len(table._rows)))


class _RowItems(ItemsView[str, float]):
    _mapping: FeatureStats

    def __iter__(self) -> Iterator[tuple[str, float]]:
        row = self._mapping
        return zip(row._names, row._values(), strict=True)


class _RowValues(ValuesView[float]):
    _mapping: FeatureStats

    def __iter__(self) -> Iterator[float]:
        return iter(self._mapping._values())
