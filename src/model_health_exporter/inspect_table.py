"""`inspect --format table`: the models document of /api/v1/models as text for a terminal.

Rendered from the same document the JSON format prints, so the two cannot disagree."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any, Final

# (metrics.json field, the metric's name in thresholds, degradation and trends)
_SHOWN: Final = (("accuracy", "accuracy"), ("f1_weighted", "f1_score"))
_QUALITY_RATIOS: Final = ("missing_ratio", "out_of_range_ratio", "unseen_category_ratio")


def _num(value: object, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def level_of(value: float, levels: Mapping[str, float], higher_is_better: bool = True) -> str:
    """ok, WARNING or CRITICAL against a metric's warning/critical thresholds."""
    worse = operator.lt if higher_is_better else operator.gt
    for name in ("critical", "warning"):
        limit = levels.get(name)
        if isinstance(limit, int | float) and worse(value, limit):
            return name.upper()
    return "ok"


def _columns(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _version_rows(model: Mapping[str, Any]) -> list[list[str]]:
    thresholds = model["baseline"]["quality_thresholds"]
    rows = [["VERSION", "ACTIVE", "VALID", "GENERATED", "ACCURACY", "F1", "SAMPLES", "DEGRADED"]]
    for v in model["versions"]:
        metrics = v["metrics"] or {}
        cells = []
        for field, name in _SHOWN:
            value = metrics.get(field)
            status = "" if value is None else level_of(value, thresholds.get(name, {}))
            cells.append(_num(value) + ("" if status in ("", "ok") else f" {status}"))
        worst = max(v["degradation"].items(), key=lambda kv: kv[1], default=None)
        rows.append(
            [
                v["version"],
                "*" if v["active"] else "",
                "yes" if v["valid"] else "NO (below)",
                str(metrics.get("generated_at", "-"))[:16].replace("T", " "),
                *cells,
                str(metrics.get("training_samples", "-")),
                "-" if worst is None or worst[1] <= 0 else f"{worst[0]} {_pct(worst[1])}",
            ]
        )
    return rows


def _drift_lines(window: Mapping[str, Any]) -> list[str]:
    features: Mapping[str, Mapping[str, float]] = window["features"]
    metrics: Mapping[str, float] = window["metrics"]
    tested = {n: s for n, s in features.items() if "drift_detected" in s}
    if not tested:
        rows = window["samples"].get("features", 0)
        return [
            f"drift: not computed: too few predictions in the window ({rows} with features; "
            f"reference: {window['reference'] or 'not yet built'})"
        ]
    drifted = sorted(
        (n for n, s in tested.items() if s["drift_detected"]),
        key=lambda n: tested[n].get("drift_p_value", 1.0),
    )
    head = (
        f"drift (reference: {window['reference']}): {len(drifted)} of {len(tested)} "
        f"features drifted (share {_num(metrics.get('data_drift_share'), 2)})"
    )
    lines = [head]
    for name in drifted:
        s = tested[name]
        lines.append(
            f"  DRIFTED {name}: p {s.get('drift_p_value', float('nan')):.2g}, "
            f"PSI {_num(s.get('psi'))}, JS {_num(s.get('js_distance'))}"
        )
    if "prediction_drift_detected" in metrics:
        flag = "DRIFTED" if metrics["prediction_drift_detected"] else "stable"
        lines.append(
            f"  prediction {flag}: p {metrics.get('prediction_drift_p_value', float('nan')):.2g}, "
            f"PSI {_num(metrics.get('prediction_psi'))}"
        )
    return lines


def _quality_line(features: Mapping[str, Mapping[str, float]]) -> str | None:
    worst: list[str] = []
    for ratio in _QUALITY_RATIOS:
        found = [(s[ratio], n) for n, s in features.items() if ratio in s]
        if found:
            value, name = max(found)
            worst.append(f"{ratio.removesuffix('_ratio').replace('_', ' ')} {_pct(value)} ({name})")
    return "data quality, worst feature: " + "; ".join(worst) if worst else None


def _live_lines(v: Mapping[str, Any], thresholds: Mapping[str, Mapping[str, float]]) -> list[str]:
    """What the logs say of a version; live and estimated performance against the
    evaluation thresholds (the same ones the alerts hold them to)."""
    lines = []
    if "window" in v:
        window = v["window"]
        metrics = window["metrics"]
        samples = ", ".join(f"{k} {n}" for k, n in sorted(window["samples"].items()))
        lines.append(f"predictions {v['predictions_total']}; window samples: {samples or 'none'}")
        perf = []
        for key, label, levels in (
            ("accuracy", "live accuracy", "accuracy"),
            ("f1_score", "live F1", "f1_score"),
            ("estimated_accuracy", "estimated accuracy", "accuracy"),
            ("error_ratio", "error ratio", None),
            ("latency_mean_seconds", "mean latency (s)", None),
        ):
            if key in metrics:
                status = level_of(metrics[key], thresholds.get(levels, {})) if levels else "ok"
                perf.append(
                    f"{label} {_num(metrics[key])}" + ("" if status == "ok" else f" {status}")
                )
        if perf:
            lines.append(", ".join(perf))
        lines += _drift_lines(window)
        quality = _quality_line(window["features"])
        if quality:
            lines.append(quality)
    health = v.get("health")
    if health and health["score"] is not None:
        checks = ", ".join(f"{c} {s:.0f}" for c, s in health["checks"].items())
        lines.append(f"health {health['score']:.0f} {health['level'].upper()} ({checks})")
        reasons = ", ".join(health["retrain_reasons"]) or "none"
        verdict = "RECOMMENDED" if health["retrain_recommended"] else "not recommended"
        lines.append(f"retraining {verdict}; triggers holding: {reasons}")
    return lines


def _model_lines(model: Mapping[str, Any]) -> list[str]:
    active = model["active_version"]
    source = f" from {model['active_source']}" if active else ""
    lines = [
        f"Model {model['name']}  ({len(model['versions'])} versions; active: "
        f"{active or 'none'}{source})"
    ]
    if model["baseline_problem"]:
        lines.append(f"  baseline_metrics.json unusable: {model['baseline_problem']}")
    lines += _columns(_version_rows(model))
    lines += [
        f"  {v['version']}: metrics.json invalid: {v['problem']}"
        for v in model["versions"]
        if not v["valid"]
    ]
    thresholds = model["baseline"]["quality_thresholds"]
    shown = [
        f"{n} warning {_num(thresholds[n].get('warning'), 2)} "
        f"critical {_num(thresholds[n].get('critical'), 2)}"
        for _, n in _SHOWN
        if n in thresholds
    ]
    if shown:
        lines.append("  thresholds: " + "; ".join(shown))
    trends = model["trends_per_day"]
    if trends:
        lines.append(
            "  trend per day across versions: "
            + ", ".join(f"{n} {t:+.2g}" for n, t in trends.items() if n in dict(_SHOWN).values())
        )
    for v in model["versions"]:
        live = _live_lines(v, thresholds)
        if live:
            lines.append(f"  {v['version']}{' (active)' if v['active'] else ''}:")
            lines += [f"    {line}" for line in live]
    return lines


def render_table(document: Mapping[str, Any]) -> str:
    models = document["models"]
    if not models:
        return "No model versions found.\n"
    blocks = ["\n".join(_model_lines(m)) for m in models]
    return "\n\n".join(blocks) + "\n"
