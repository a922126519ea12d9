"""Reference profiles: the fixed bins a feature's live values are counted over.

At run time the daemon keeps, per feature, only counts over the bins of the feature's
reference profile, so memory does not grow with prediction volume. A profile is built once
from a reference sample (training data or the first predictions of a version) and saved as
JSON (`to_dict` / `from_dict`).

Numeric bins (`NumericProfile`), with edges e_0 < e_1 < ... < e_B:

    bin 0       underflow   (-inf, e_0)         values below the reference minimum
    bin i       inner       [e_(i-1), e_i)      i = 1 .. B, left-closed
    bin B + 1   overflow    [e_B, +inf)         values above the reference maximum

e_0 is the reference minimum, e_1 .. e_(B-1) are the reference quantiles at 1/B' .. (B'-1)/B'
(B' the requested bin count; the "inverted CDF" quantile, so each edge is a reference value),
and e_B = nextafter(maximum, +inf), so the maximum falls in the last inner bin and the overflow
bin holds exactly the values > maximum. Repeated quantiles are dropped: a discrete feature gets
one bin per distinct value where it has fewer distinct values than bins, and a value with a lot
of mass starts its own bin (bins are left-closed). The reference itself never falls in the
under/overflow bins; their reference counts are 0.

Categorical bins (`CategoricalProfile`): the top-K reference categories in order of decreasing
frequency (ties by name), then one trailing "other" bin for every other value. When the
reference has more than K categories, they are chosen on every other reference value only,
and the counts of the rest are kept apart (`test_counts`) for the chi-square test: counts of
categories chosen for being frequent in the same sample overstate them, which made the test
flag drift that was not there.

Missing values (None, NaN) are not binned; profiles count them in `missing`.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Self

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
NumericValues = npt.NDArray[Any] | Iterable[float | None]

DEFAULT_NUMERIC_BINS: Final = 20
"""Requested inner bins per numeric feature (quantiles at 5% steps), 22 counters with the
under/overflow bins. Why 20: the binned KS statistic can miss at most one bin's mass (about
1/20 of the reference) against the raw-sample KS, and in practice misses far less (see
docs/statistics.md); at 20 bins a 0.25-std shift in a 5,000-row window is found in every trial.
More bins buy little KS accuracy but raise the sampling floor of PSI and JS under no drift,
about (B - 1)(1/n + 1/m) for PSI, which would push small windows over PSI's 0.1 warning."""

DEFAULT_TOP_K: Final = 20
"""Categories kept per categorical feature; the rest share the "other" bin."""

NUMERIC: Final = "numeric"
CATEGORICAL: Final = "categorical"


# --------------------------------------------------------------------------------------------
# Validation helpers (raise ValueError with the field's name)
# --------------------------------------------------------------------------------------------


def _int_field(value: Any, name: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _float_field(value: Any, name: str) -> float:
    is_number = isinstance(value, int | float | np.number) and not isinstance(value, bool)
    out = float(value) if is_number else math.nan
    if not math.isfinite(out):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return out


def _is_list_like(value: object) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping)


def _int_tuple(value: Any, name: str) -> tuple[int, ...]:
    if not _is_list_like(value):
        raise ValueError(f"{name} must be a list of integers, got {value!r}")
    return tuple(_int_field(v, f"{name}[{i}]") for i, v in enumerate(value))


def _float_tuple(value: Any, name: str) -> tuple[float, ...]:
    if not _is_list_like(value):
        raise ValueError(f"{name} must be a list of numbers, got {value!r}")
    return tuple(_float_field(v, f"{name}[{i}]") for i, v in enumerate(value))


def _read_only(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    array.flags.writeable = False
    return array


_NO_MEANS: Final[FloatArray] = _read_only(np.zeros(0, dtype=np.float64))


def counts_between(
    values: npt.ArrayLike, edges: npt.ArrayLike, side: Literal["left", "right"]
) -> IntArray:
    """Counts of `values` in the len(edges) + 1 intervals that the ascending `edges` cut
    the line into. side="left": a value equal to an edge counts in the interval above
    it; "right": below it. The values are sorted once and each edge found among them: a
    binary search per value mispredicts a branch at nearly every step (3,000 values, 20
    edges: 145 µs against 40)."""
    ordered = np.sort(np.ravel(np.asarray(values, dtype=np.float64)))
    below = np.searchsorted(ordered, np.asarray(edges, dtype=np.float64), side=side)
    counts: IntArray = np.diff(below, prepend=0, append=ordered.size).astype(np.int64)
    return counts


def _check_kind(data: Mapping[str, Any], kind: str) -> None:
    is_object = isinstance(data, Mapping)
    if not is_object:
        raise ValueError(f"a {kind} profile must be a JSON object, got {type(data).__name__}")
    if data.get("kind") != kind:
        raise ValueError(f"expected a profile of kind {kind!r}, got kind {data.get('kind')!r}")


# --------------------------------------------------------------------------------------------
# Numeric
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class NumericProfile:
    """Bins and summary of a numeric feature's reference (bin convention: module docstring).

    `edges` has B + 1 strictly increasing values, `counts` the B + 2 reference counts (underflow,
    B inner bins, overflow; under/overflow are 0). `n` is the number of non-missing reference
    values (= sum of counts), `mean` / `std` their mean and population standard deviation
    (ddof=0), `minimum` / `maximum` their range, `missing` the number of None/NaN values.
    `bin_means` holds the B inner bins' reference means (where the Wasserstein estimate puts
    each bin's mass); empty means unknown, and the bins' midpoints stand in.

    Given as any sequences of numbers; held as read-only numpy arrays (float64 edges and bin
    means, int64 counts): a version keeps a profile per numeric feature, and as tuples of
    Python numbers they took about 2 KiB each, 0.8 KiB as arrays. Two profiles are equal
    when every field is (arrays element by element), as they were as tuples.
    """

    edges: FloatArray
    counts: IntArray
    n: int
    mean: float
    std: float
    minimum: float
    maximum: float
    missing: int = 0
    bin_means: FloatArray = field(default_factory=lambda: _NO_MEANS)

    def __post_init__(self) -> None:
        edges = _float_tuple(self.edges, "edges")
        counts = _int_tuple(self.counts, "counts")
        n = _int_field(self.n, "n", minimum=1)
        missing = _int_field(self.missing, "missing")
        stats = {
            name: _float_field(getattr(self, name), name)
            for name in ("mean", "std", "minimum", "maximum")
        }
        if len(edges) < 2:
            raise ValueError(f"edges must hold at least 2 values, got {len(edges)}")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError("edges must be strictly increasing")
        if len(counts) != len(edges) + 1:
            raise ValueError(
                f"counts must hold len(edges) + 1 = {len(edges) + 1} values "
                f"(underflow, inner bins, overflow), got {len(counts)}"
            )
        if sum(counts) != n:
            raise ValueError(f"counts sum to {sum(counts)}, expected n = {n}")
        if counts[0] != 0 or counts[-1] != 0:
            raise ValueError("reference counts of the underflow and overflow bins must be 0")
        if stats["minimum"] != edges[0]:
            raise ValueError(f"minimum {stats['minimum']} must equal the first edge {edges[0]}")
        if not edges[-2] <= stats["maximum"] < edges[-1]:
            raise ValueError(
                f"maximum {stats['maximum']} must lie in the last inner bin "
                f"[{edges[-2]}, {edges[-1]})"
            )
        if not stats["minimum"] <= stats["mean"] <= stats["maximum"] or stats["std"] < 0:
            raise ValueError("mean must lie in [minimum, maximum] and std must be >= 0")
        bin_means = _float_tuple(self.bin_means, "bin_means")
        if bin_means and len(bin_means) != len(edges) - 1:
            raise ValueError(
                f"bin_means must hold one value per inner bin ({len(edges) - 1}), "
                f"got {len(bin_means)}"
            )
        if any(not lo <= x < hi for lo, x, hi in zip(edges, bin_means, edges[1:], strict=False)):
            raise ValueError("each of bin_means must lie inside its bin [e_(i-1), e_i)")
        arrays = {
            "edges": _read_only(np.array(edges, dtype=np.float64)),
            "counts": _read_only(np.array(counts, dtype=np.int64)),
            "bin_means": _read_only(np.array(bin_means, dtype=np.float64))
            if bin_means
            else _NO_MEANS,
        }
        # normalise types (numpy scalars, lists from JSON) so equality and hashing work
        for name, value in (*arrays.items(), ("n", n), ("missing", missing), *stats.items()):
            object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericProfile):
            return NotImplemented
        return (
            (self.n, self.mean, self.std, self.minimum, self.maximum, self.missing)
            == (other.n, other.mean, other.std, other.minimum, other.maximum, other.missing)
            and np.array_equal(self.edges, other.edges)
            and np.array_equal(self.counts, other.counts)
            and np.array_equal(self.bin_means, other.bin_means)
        )

    def __hash__(self) -> int:
        return hash((self.n, self.mean, self.std, tuple(self.edges.tolist())))

    @property
    def n_bins(self) -> int:
        """Number of counters: inner bins + underflow + overflow."""
        return len(self.counts)

    def bin_indices(self, values: npt.ArrayLike) -> IntArray:
        """Bin of each value: 0 underflow, 1 .. n_bins - 2 inner, n_bins - 1 overflow.

        `values` must not hold NaN (count missing values separately); ±inf go to the
        under/overflow bins."""
        v = np.asarray(values, dtype=np.float64)
        if np.isnan(v).any():
            raise ValueError("values hold NaN; count missing values separately")
        idx: IntArray = np.searchsorted(self.edges, v, side="right").astype(np.int64)
        return idx

    def bin_counts(self, values: npt.ArrayLike) -> IntArray:
        """Counts per bin of `values` (length n_bins, as `bin_indices` numbers them, a
        value equal to an edge in the bin above it); the live side adds these up."""
        v = np.ravel(np.asarray(values, dtype=np.float64))
        if np.isnan(v).any():
            raise ValueError("values hold NaN; count missing values separately")
        return counts_between(v, self.edges, side="left")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (plain floats, ints and lists; floats round-trip exactly)."""
        return {
            "kind": NUMERIC,
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "missing": self.missing,
            "bin_means": self.bin_means.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of `to_dict`; raises ValueError on malformed or inconsistent data."""
        _check_kind(data, NUMERIC)
        missing_keys = {"edges", "counts", "n", "mean", "std", "minimum", "maximum"} - set(data)
        if missing_keys:
            raise ValueError(f"numeric profile lacks {', '.join(sorted(missing_keys))}")
        return cls(
            edges=data["edges"],
            counts=data["counts"],
            n=data["n"],
            mean=data["mean"],
            std=data["std"],
            minimum=data["minimum"],
            maximum=data["maximum"],
            missing=data.get("missing", 0),
            bin_means=data.get("bin_means", ()),
        )


def _numeric_values(values: NumericValues) -> FloatArray:
    """Values as float64 with None -> NaN; raises ValueError on text or infinities."""
    try:
        raw = values if isinstance(values, np.ndarray) else list(values)
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"numeric values must be numbers or None: {exc}") from exc
    arr = np.ravel(arr)
    if np.isinf(arr).any():
        raise ValueError("numeric reference values must be finite (or None/NaN for missing)")
    return arr


def build_numeric_profile(
    values: NumericValues, n_bins: int = DEFAULT_NUMERIC_BINS
) -> NumericProfile:
    """Profile of a numeric reference sample; None/NaN count as missing.

    Raises ValueError if no value is present or a value is not a finite number."""
    b = _int_field(n_bins, "n_bins", minimum=1)
    arr = _numeric_values(values)
    present = arr[~np.isnan(arr)]
    if present.size == 0:
        raise ValueError("cannot profile a numeric feature without any non-missing value")
    ordered = np.sort(present)
    maximum = float(ordered[-1])
    # quantiles at 0, 1/b, .., (b-1)/b; the last edge is just above the maximum (left-closed bins)
    quantiles = np.quantile(ordered, np.arange(b) / b, method="inverted_cdf")
    edges = np.append(np.unique(quantiles), np.nextafter(maximum, math.inf))
    # bin i holds the sorted values from position starts[i - 1] to starts[i]
    starts = np.concatenate(([0], np.searchsorted(ordered, edges, side="left"), [ordered.size]))
    counts = np.diff(starts)
    cumulative = np.concatenate(([0.0], np.cumsum(ordered)))
    sums = np.diff(cumulative[starts])
    # every inner bin holds its left edge (a reference value), so no mean divides by zero
    upper = np.nextafter(edges[1:], -math.inf)
    inner_means = np.clip(sums[1:-1] / counts[1:-1], edges[:-1], upper)
    return NumericProfile(
        edges=edges,
        counts=counts,
        n=int(present.size),
        mean=min(max(float(ordered.mean()), float(edges[0])), maximum),  # rounding can overshoot
        std=float(ordered.std()),
        minimum=float(edges[0]),
        maximum=maximum,
        missing=int(arr.size - present.size),
        bin_means=inner_means,
    )


# --------------------------------------------------------------------------------------------
# Categorical
# --------------------------------------------------------------------------------------------


def category_key(value: object) -> str | None:
    """The category a raw value counts as; None for missing (None, NaN).

    Strings are kept as they are; booleans become "true"/"false" (their JSON spelling),
    integers and integral floats their decimal digits (so 3, 3.0 and the CSV text "3" agree),
    other floats `repr`. Both the profile builder and the live side must key values this way.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isnan(f):
            return None
        return str(int(f)) if f.is_integer() else repr(f)
    return str(value)


@dataclass(frozen=True, slots=True)
class CategoricalProfile:
    """Top-K categories of a categorical feature's reference and their counts.

    `counts` has len(categories) + 1 values: one per category, then the "other" bin (reference
    values outside the top K). `n` is the number of non-missing reference values (= sum of
    counts), `missing` the number of None/NaN values.

    `test_counts`, the same bins counted over the reference values that did not take part in
    choosing the categories, is what the chi-square test compares a window with; empty when
    no choice was made (every reference category has its own bin), and then `counts` serve.
    """

    categories: tuple[str, ...]
    counts: tuple[int, ...]
    n: int
    missing: int = 0
    test_counts: tuple[int, ...] = ()
    # category -> bin, built on first use: the drift tally codes values through the
    # reference's own code dicts, so most profiles never need it
    _index: dict[str, int] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        raw: Any = self.categories  # from JSON: anything
        if not _is_list_like(raw):
            raise ValueError(f"categories must be a list of strings, got {raw!r}")
        cats = tuple(raw)
        if not all(isinstance(c, str) for c in cats):
            raise ValueError("categories must all be strings")
        # One string per category however many references name it (versions of a model
        # share most categories); released with the last reference that holds it.
        cats = tuple(map(sys.intern, map(str, cats)))
        if len(set(cats)) != len(cats):
            raise ValueError("categories must be distinct")
        counts = _int_tuple(self.counts, "counts")
        n = _int_field(self.n, "n", minimum=1)
        missing = _int_field(self.missing, "missing")
        if len(counts) != len(cats) + 1:
            raise ValueError(
                f"counts must hold len(categories) + 1 = {len(cats) + 1} values "
                f"(the categories, then 'other'), got {len(counts)}"
            )
        if sum(counts) != n:
            raise ValueError(f"counts sum to {sum(counts)}, expected n = {n}")
        test_counts = _int_tuple(self.test_counts, "test_counts")
        if test_counts and (
            len(test_counts) != len(counts)
            or not 0 < sum(test_counts) <= n
            or any(t > c for t, c in zip(test_counts, counts, strict=True))
        ):
            raise ValueError(
                f"test_counts must be empty or hold {len(counts)} values, each at most the "
                f"bin's count, with a sum in 1..n = {n}"
            )
        for name, value in (
            ("categories", cats),
            ("counts", counts),
            ("n", n),
            ("missing", missing),
            ("test_counts", test_counts),
        ):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_index", None)

    @property
    def n_bins(self) -> int:
        """Number of counters: the categories + "other"."""
        return len(self.counts)

    @property
    def reference_test_counts(self) -> tuple[int, ...]:
        """The reference counts the chi-square test uses: `test_counts`, else `counts`."""
        return self.test_counts or self.counts

    @property
    def other_index(self) -> int:
        """Index of the trailing "other" bin."""
        return len(self.categories)

    def index_of(self, category: str) -> int:
        """Bin of a category (a `category_key`); unseen categories -> `other_index`."""
        index = self._index
        if index is None:  # two threads may both build it: equal dicts, either will do
            index = {c: i for i, c in enumerate(self.categories)}
            object.__setattr__(self, "_index", index)
        return index.get(category, len(self.categories))

    def bin_counts(self, values: Iterable[object]) -> IntArray:
        """Counts per bin of raw values (keyed by `category_key`; missing ones skipped)."""
        counts = np.zeros(self.n_bins, dtype=np.int64)
        for value in values:
            key = category_key(value)
            if key is not None:
                counts[self.index_of(key)] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": CATEGORICAL,
            "categories": list(self.categories),
            "counts": list(self.counts),
            "n": self.n,
            "missing": self.missing,
        } | ({"test_counts": list(self.test_counts)} if self.test_counts else {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of `to_dict`; raises ValueError on malformed or inconsistent data."""
        _check_kind(data, CATEGORICAL)
        missing_keys = {"categories", "counts", "n"} - set(data)
        if missing_keys:
            raise ValueError(f"categorical profile lacks {', '.join(sorted(missing_keys))}")
        return cls(
            categories=data["categories"],
            counts=data["counts"],
            n=data["n"],
            missing=data.get("missing", 0),
            test_counts=data.get("test_counts", ()),
        )


def build_categorical_profile(
    values: Iterable[object], top_k: int = DEFAULT_TOP_K
) -> CategoricalProfile:
    """Profile of a categorical reference sample (values keyed by `category_key`; None/NaN
    count as missing). Raises ValueError if no value is present.

    With more than `top_k` categories, the categories are chosen on the present values at
    even positions (0, 2, 4, ...) and the odd ones give `test_counts`: see
    `categorical_profile_from_tallies`."""
    k = _int_field(top_k, "top_k", minimum=1)
    halves: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
    missing = 0
    position = 0
    for value in values:
        key = category_key(value)
        if key is None:
            missing += 1
        else:
            halves[position & 1][key] += 1
            position += 1
    return categorical_profile_from_tallies(halves[0], halves[1], k, missing)


def categorical_profile_from_tallies(
    choosing: Mapping[str, int], testing: Mapping[str, int], top_k: int, missing: int = 0
) -> CategoricalProfile:
    """Profile from the category counts of two halves of a reference sample.

    If the two hold at most `top_k` categories together, each gets its own bin (by
    decreasing frequency over both, ties by name) and there are no `test_counts`: nothing was
    chosen. Otherwise the top `top_k` categories of `choosing` (ties by name) get bins,
    `counts` are over both halves and `test_counts` over `testing` alone. Choosing the
    categories that came out frequent in a sample and then comparing that same sample with a
    window favours the chosen ones (their counts are high partly by chance), so the
    chi-square test of the window would flag drift that is not there; `testing`'s counts are
    independent of the choice. Raises ValueError if no value is present."""
    k = _int_field(top_k, "top_k", minimum=1)
    total: Counter[str] = Counter(choosing)
    total.update(testing)
    n = sum(total.values())
    if n == 0:
        raise ValueError("cannot profile a categorical feature without any non-missing value")
    if len(total) <= k:
        ranked = sorted(total.items(), key=lambda item: (-item[1], item[0]))
        return CategoricalProfile(
            categories=tuple(cat for cat, _ in ranked),
            counts=(*(count for _, count in ranked), 0),
            n=n,
            missing=missing,
        )
    chosen = [cat for cat, _ in sorted(choosing.items(), key=lambda item: (-item[1], item[0]))]
    top = chosen[:k]
    counts = [total[cat] for cat in top]
    test = [testing.get(cat, 0) for cat in top]
    n_test = sum(testing.values())
    return CategoricalProfile(
        categories=tuple(top),
        counts=(*counts, n - sum(counts)),
        n=n,
        missing=missing,
        test_counts=(*test, n_test - sum(test)) if n_test else (),
    )


Profile = NumericProfile | CategoricalProfile


def profile_from_dict(data: Mapping[str, Any]) -> Profile:
    """A profile of either kind from its `to_dict` form (dispatch on "kind")."""
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if kind == NUMERIC:
        return NumericProfile.from_dict(data)
    if kind == CATEGORICAL:
        return CategoricalProfile.from_dict(data)
    raise ValueError(f"profile kind must be {NUMERIC!r} or {CATEGORICAL!r}, got {kind!r}")
