"""The short horizon's drift (`drift_flag_reports`) computes only what the fast alerts
read, each feature's test for the configured method alone: its flags, drift share and
label-free estimate must be those of the full report (`drift_reports`, tested against
scipy elsewhere) for every method, and the statistics nobody reads are left out."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import pytest

from model_health_exporter.stats.drift import (
    DriftMethod,
    categorical_drift_many,
    numeric_drift_many,
)
from model_health_exporter.stats.reference import (
    DriftCounts,
    DriftSettings,
    ModelReference,
    drift_flag_reports,
    drift_reports,
)
from tests.unit.test_drift_batch import _categorical_profile, _current_counts, _numeric_case
from tests.unit.test_window_drift import NOW, _prediction, _reference, _rows, _window

METHODS: tuple[DriftMethod, ...] = ("p_value", "psi", "js", "kl", "wasserstein")


def _cases() -> list[tuple[ModelReference, DriftCounts]]:
    """Windows with and without drift, of a calibrated and a plain reference, one with
    too few rows for drift."""
    rng = np.random.default_rng(21)
    plain, calibrated = _reference(_rows(rng, 2000)), _reference(_rows(rng, 2000), labels_from=rng)
    cases = []
    for reference, n, shift in [
        (plain, 600, 0.0),
        (plain, 800, 0.5),
        (calibrated, 700, 0.2),
        (calibrated, 900, 1.0),
        (plain, 50, 0.0),
    ]:
        window = _window(reference)
        for record in _rows(rng, n, shift):
            window.observe_prediction(_prediction(record), NOW)
        drift = window._totals(NOW).drift
        assert drift is not None
        cases.append((reference, drift))
    return cases


@pytest.mark.parametrize("method", METHODS)
def test_flags_share_and_estimate_equal_the_full_reports(method: DriftMethod) -> None:
    settings = DriftSettings(method=method)
    jobs = [(reference, drift, settings) for reference, drift in _cases()]
    full, brief = drift_reports(jobs), drift_flag_reports(jobs)
    assert len(brief) == len(full)
    flagged = 0
    for whole, short in zip(full, brief, strict=True):
        want = {
            name: stats["drift_detected"]
            for name, stats in whole.features.items()
            if "drift_detected" in stats
        }
        got = {name: dict(stats) for name, stats in short.features.items() if stats}
        assert got == {name: {"drift_detected": flag} for name, flag in want.items()}
        flagged += sum(1 for flag in want.values() if flag)
        for key in ("data_drift_share", "estimated_accuracy"):
            assert (key in short.metrics) == (key in whole.metrics), key
            if key in whole.metrics:
                assert short.metrics[key] == pytest.approx(whole.metrics[key], rel=1e-9)
        # nothing else of the full report's: no divergences, no output drift
        assert not short.metrics.keys() & {"prediction_psi", "confidence_psi"}
        assert short.rows == whole.rows
    assert flagged > 0  # the cases held real drift


def test_windows_of_different_methods_in_one_call() -> None:
    cases = _cases()
    jobs = [
        (reference, drift, DriftSettings(method=METHODS[i % len(METHODS)]))
        for i, (reference, drift) in enumerate(cases)
    ]
    mixed = drift_flag_reports(jobs)
    for job, report in zip(jobs, mixed, strict=True):
        assert report == drift_flag_reports([job])[0]
    assert drift_flag_reports([]) == []


def test_the_short_summary_reads_the_configured_method() -> None:
    """Through the window: the short horizon's flags follow --drift.method."""
    rng = np.random.default_rng(4)
    reference = _reference(_rows(rng, 2000))
    for method in METHODS:
        window = _window(reference)
        window._drift_settings = replace(window._drift_settings, method=method)
        for record in _rows(rng, 500, 0.8):
            window.observe_prediction(_prediction(record), NOW)
        summary = window.summary(NOW)
        assert summary.short is not None
        long_flags = {
            n: s["drift_detected"] for n, s in summary.features.items() if "drift_detected" in s
        }
        assert long_flags  # (Wasserstein: the numeric feature only)
        assert dict(summary.short.features) == {
            n: {"drift_detected": f} for n, f in long_flags.items()
        }
        assert summary.short.metrics["data_drift_share"] == summary.metrics["data_drift_share"]


_READ_BY: dict[DriftMethod, frozenset[str]] = {
    "p_value": frozenset({"ks_statistic", "p_value"}),
    "psi": frozenset({"psi", "kl_divergence", "js_distance"}),
    "js": frozenset({"psi", "kl_divergence", "js_distance"}),
    "kl": frozenset({"psi", "kl_divergence", "js_distance"}),
    "wasserstein": frozenset({"wasserstein"}),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", range(5))
def test_one_method_s_statistics_equal_the_full_batch(method: DriftMethod, seed: int) -> None:
    """`only=method`: the statistics that method's flag reads are the full batch's (which
    equals the scalar functions, `test_drift_batch.py`), every other one is None."""
    rng = np.random.default_rng(300 + seed)
    profiles, counts, lows, highs = _numeric_case(rng, int(rng.integers(1, 25)))
    categorical = [_categorical_profile(rng) for _ in range(int(rng.integers(1, 12)))]
    categorical_counts = [_current_counts(rng, p) for p in categorical]
    pairs = [
        *zip(
            numeric_drift_many(profiles, counts, lows, highs, only=method),
            numeric_drift_many(profiles, counts, lows, highs),
            strict=True,
        ),
        *zip(
            categorical_drift_many(categorical, categorical_counts, only=method),
            categorical_drift_many(categorical, categorical_counts),
            strict=True,
        ),
    ]
    for brief, full in pairs:
        if full is None:
            assert brief is None
            continue
        assert brief is not None and type(brief) is type(full)
        got, want = dataclasses.asdict(brief), dataclasses.asdict(full)
        assert got["n_current"] == want["n_current"]
        for name, value in want.items():
            if name == "n_current":
                continue
            if name in _READ_BY[method] and value is not None:
                assert got[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name
            else:
                assert got[name] is None, name
