"""The catalogue of model quality metrics: how each is named in metrics.json,
in Prometheus, and in baseline files, and which direction is better.

One table, so that parsing, thresholds, degradation and exposition agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class QualityMetric:
    name: str  # canonical name: the Prometheus suffix and the `metric` label value
    field: str  # key in metrics.json
    help: str
    higher_is_better: bool
    is_ratio: bool  # bounded to [0, 1]


QUALITY_METRICS: Final[tuple[QualityMetric, ...]] = (
    QualityMetric("accuracy", "accuracy", "Evaluation accuracy (0-1).", True, True),
    QualityMetric(
        "precision_weighted", "precision_weighted", "Support-weighted precision (0-1).", True, True
    ),
    QualityMetric(
        "recall_weighted", "recall_weighted", "Support-weighted recall (0-1).", True, True
    ),
    QualityMetric("f1_score", "f1_weighted", "Support-weighted F1 score (0-1).", True, True),
    QualityMetric("auc_roc", "auc_roc", "Area under the ROC curve (0-1).", True, True),
    QualityMetric("auc_pr", "auc_pr", "Area under the precision-recall curve (0-1).", True, True),
    QualityMetric("log_loss", "log_loss", "Logarithmic loss (lower is better).", False, False),
    QualityMetric("mae", "mae", "Mean absolute error, in the target's unit.", False, False),
    QualityMetric("mse", "mse", "Mean squared error, in the target's unit squared.", False, False),
    QualityMetric("rmse", "rmse", "Root mean squared error, in the target's unit.", False, False),
    QualityMetric("r2", "r2", "Coefficient of determination (at most 1).", True, False),
    QualityMetric(
        "mape", "mape", "Mean absolute percentage error as a ratio (0.1 = 10%).", False, False
    ),
    QualityMetric(
        "smape", "smape", "Symmetric mean absolute percentage error as a ratio (0-2).", False, False
    ),
)

BY_NAME: Final[dict[str, QualityMetric]] = {m.name: m for m in QUALITY_METRICS}

# Names users write in baseline files and configs for the same metric.
_ALIASES: Final[dict[str, str]] = {
    "precision": "precision_weighted",
    "recall": "recall_weighted",
    "f1": "f1_score",
    "f1_weighted": "f1_score",
    "roc_auc": "auc_roc",
    "pr_auc": "auc_pr",
}


def canonical_metric_name(name: str) -> str | None:
    """The canonical name for `name`, or None if it is no known quality metric."""
    name = _ALIASES.get(name, name)
    return name if name in BY_NAME else None
