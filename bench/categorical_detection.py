"""Detection quality of the categorical drift test (chi-square, BH, adjusted p < 0.01) on
many-category features: 20 features of 60 equally likely categories, each with a reference
of its own, per trial one window without drift and one in which one feature's first 6
categories (10%) are twice as frequent (a total-variation distance of 0.09).

Prints, per reference / window size, how many drifted features were flagged and in how
many no-drift windows any feature was flagged. The figures in docs/statistics.md ("Why these
defaults") come from `python bench/categorical_detection.py`.
"""

from __future__ import annotations

import argparse

import numpy as np

from model_health_exporter.stats.drift import categorical_drift_many, drift_flags
from model_health_exporter.stats.profile import build_categorical_profile

FEATURES = 20
CATEGORIES = 60
SIZES = ((1_000, 1_000), (10_000, 5_000))  # the default reference; a reference file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    names = np.array([f"c{i}" for i in range(CATEGORIES)])
    moved = np.full(CATEGORIES, 1.0)
    moved[: CATEGORIES // 10] = 2.0
    moved /= moved.sum()
    for reference_rows, window_rows in SIZES:
        rng = np.random.default_rng(args.seed)
        detected = false_alarms = 0
        for trial in range(args.trials):
            profiles = [
                build_categorical_profile(rng.choice(names, reference_rows).tolist())
                for _ in range(FEATURES)
            ]
            windows = [p.bin_counts(rng.choice(names, window_rows).tolist()) for p in profiles]
            no_drift = dict(enumerate(categorical_drift_many(profiles, windows)))
            false_alarms += any(drift_flags({str(k): v for k, v in no_drift.items() if v}).values())
            j = trial % FEATURES
            shifted = profiles[j].bin_counts(rng.choice(names, window_rows, p=moved).tolist())
            drifted = {str(k): v for k, v in no_drift.items() if v}
            (drifted[str(j)],) = (r for r in categorical_drift_many([profiles[j]], [shifted]) if r)
            detected += drift_flags(drifted)[str(j)]
        print(
            f"reference {reference_rows:>6,} window {window_rows:>6,}: drifted feature flagged "
            f"in {detected} of {args.trials}, no-drift windows flagged {false_alarms} of "
            f"{args.trials}"
        )


if __name__ == "__main__":
    main()
