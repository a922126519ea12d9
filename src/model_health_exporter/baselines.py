"""Per-model quality thresholds and expected-dataset limits, merged from the built-in
defaults, the configuration and a model's baseline_metrics.json. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, TypeVar

from model_health_exporter.schema import BaselineFile, ExpectedDataset, Levels

# The documented quality thresholds: warning and critical a few points below target.
DEFAULT_LEVELS: Final[Mapping[str, Levels]] = MappingProxyType(
    {
        "accuracy": Levels(target=0.92, warning=0.85, critical=0.80),
        "precision_weighted": Levels(target=0.89, warning=0.82, critical=0.75),
        "recall_weighted": Levels(target=0.91, warning=0.84, critical=0.78),
        "f1_score": Levels(target=0.90, warning=0.83, critical=0.77),
    }
)
_L = TypeVar("_L", Levels, ExpectedDataset)

DEFAULT_EXPECTED: Final = ExpectedDataset(
    min_samples=1000, min_unique_items=50, max_missing_rate=0.10
)


@dataclass(frozen=True, slots=True)
class BaselineOverrides:
    """One layer of thresholds: from the configuration or from a baseline file."""

    levels: Mapping[str, Levels] = field(default_factory=dict)
    expected: ExpectedDataset = field(default_factory=ExpectedDataset)

    @classmethod
    def from_file(cls, baseline: BaselineFile) -> BaselineOverrides:
        return cls(baseline.quality_thresholds, baseline.expected_dataset or ExpectedDataset())


@dataclass(frozen=True, slots=True)
class Baseline:
    """What a model is held to: levels per quality metric and the expected dataset."""

    levels: Mapping[str, Levels]
    expected: ExpectedDataset


def _overlay(base: _L, top: _L) -> _L:
    return base.model_copy(update=top.model_dump(exclude_none=True))


def merge_baseline(*layers: BaselineOverrides) -> Baseline:
    """Merge layers from least to most specific, field by field: a layer that sets only
    `target` for accuracy keeps the warning and critical levels from below it."""
    levels: dict[str, Levels] = dict(DEFAULT_LEVELS)
    expected = DEFAULT_EXPECTED
    for layer in layers:
        for name, lv in layer.levels.items():
            levels[name] = _overlay(levels.get(name, Levels()), lv)
        expected = _overlay(expected, layer.expected)
    return Baseline(MappingProxyType(levels), expected)
