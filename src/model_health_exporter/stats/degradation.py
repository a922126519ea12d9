"""Degradation of a quality metric against its baseline, and its severity band."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


def degradation_ratio(value: float, baseline: float, higher_is_better: bool) -> float | None:
    """Relative degradation of `value` from `baseline`: positive when worse, negative when
    better, 0.1 = 10% worse. None when the baseline is 0 (no relative change exists)."""
    if baseline == 0:
        return None
    change = (value - baseline) / abs(baseline)
    return (-change if higher_is_better else change) + 0.0  # + 0.0 turns -0.0 into 0.0


@dataclass(frozen=True, slots=True)
class SeverityBands:
    """Upper edges of the low, medium and high bands; above `high` is critical."""

    low: float = 0.05
    medium: float = 0.10
    high: float = 0.20


DEFAULT_BANDS: Final = SeverityBands()


def degradation_severity(ratio: float, bands: SeverityBands = DEFAULT_BANDS) -> str:
    """none (no degradation), low (< 5%), medium (5-10%), high (10-20%), critical (> 20%)."""
    if ratio <= 0:
        return "none"
    if ratio < bands.low:
        return "low"
    if ratio < bands.medium:
        return "medium"
    if ratio <= bands.high:
        return "high"
    return "critical"


SEVERITY_LEVELS: Final[Mapping[str, int]] = MappingProxyType(
    {"none": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
)
"""Numeric form of each severity, for routing_ml_model_degradation_severity."""


def degradation_severity_level(ratio: float, bands: SeverityBands = DEFAULT_BANDS) -> int:
    """`degradation_severity` as a number: 0 none, 1 low, 2 medium, 3 high, 4 critical."""
    return SEVERITY_LEVELS[degradation_severity(ratio, bands)]
