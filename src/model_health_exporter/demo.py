"""`model-health-exporter demo`: synthetic prediction and feedback logs to watch the
exporter with, written where the daemon tails them (docs/prediction-logs.md).

For the active version of every model it appends predictions to
`<version>/predictions/demo.jsonl` and, a few seconds later, feedback for about half of
them to `<version>/feedback/demo.jsonl`. Probabilities are calibrated (the actual label is
drawn from the predicted distribution, so accuracy is about the mean confidence) until
drift is injected: then a numeric feature moves by one standard deviation and the labels
stop following the model, so live accuracy drops while confidence stays high.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO, Final

from model_health_exporter import exit_codes
from model_health_exporter.fsutil import atomic_write_bytes
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.registry import ModelRegistry, RegistryConfig, RootConfig

ERROR_TYPES: Final = {  # error type -> weight, for the failed predictions
    "FeatureStoreTimeout": 6,
    "ValueError": 2,
    "ModelNotLoadedError": 1,
    "ConnectionResetError": 1,
}
FEEDBACK_SHARE: Final = 0.5  # of the successful predictions
FEEDBACK_DELAY: Final = (1.0, 5.0)  # seconds, uniform
DRIFT_FLIP: Final = 0.17  # share of labels drawn away from the prediction after drift
_CONCENTRATION: Final = 10.0  # of the confidence's beta distribution
_TIMEOUT_MS: Final = 250.0
_MAX_LAG: Final = 1.0  # seconds of missed predictions caught up after a stall, at most
# `stamp_now`: the newest version is a day old, as a model retrained daily would be.
NEWEST_AGE: Final = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Numeric:
    name: str
    mean: float  # of log(value) when lognormal
    std: float
    missing: float = 0.0  # share of nulls
    lognormal: bool = False
    digits: int = 1  # 0 writes integers
    minimum: float = 0.0


@dataclass(frozen=True, slots=True)
class Categorical:
    name: str
    values: tuple[str, ...]  # the first ones the most frequent


@dataclass(frozen=True, slots=True)
class Profile:
    classes: tuple[str, ...]
    priors: tuple[float, ...]  # how often each class is predicted
    features: tuple[Numeric | Categorical, ...]
    drift_feature: str  # a Numeric one
    confidence: float  # mean confidence, so accuracy before drift
    latency_ms: float  # median
    latency_sigma: float = 0.5  # of log(latency)
    error_rate: float = 0.01


PROFILES: Final = {
    "routing": Profile(
        classes=("P100", "P200", "P300", "P400", "P500"),
        priors=(0.35, 0.25, 0.2, 0.12, 0.08),
        features=(
            Categorical("ITEM_CD", tuple(f"I{i}" for i in range(1, 41))),
            Numeric("QTY", 27, 12, digits=0, minimum=1),
            Numeric("DURATION_MIN", 48, 25, missing=0.01, minimum=1),
        ),
        drift_feature="QTY",
        confidence=0.93,  # production-v3's evaluation accuracy: healthy live = evaluated
        latency_ms=18,
    ),
    "fraud": Profile(
        classes=("approve", "deny"),
        priors=(0.95, 0.05),
        features=(
            Numeric("amount", math.log(45), 1.0, lognormal=True, digits=2, minimum=0.5),
            Categorical("country", ("US", "GB", "DE", "FR", "CA", "NL", "BR", "IN", "NG", "RU")),
            Categorical(
                "merchant_category",
                ("grocery", "fuel", "restaurants", "travel", "electronics", "gambling"),
            ),
        ),
        drift_feature="amount",
        confidence=0.95,
        latency_ms=35,
        latency_sigma=0.4,
    ),
}
GENERIC: Final = Profile(
    classes=("a", "b", "c"),
    priors=(0.5, 0.3, 0.2),
    features=(Categorical("segment", ("s1", "s2", "s3")), Numeric("x", 10, 3)),
    drift_feature="x",
    confidence=0.85,
    latency_ms=20,
)


@dataclass(frozen=True, slots=True)
class Generated:
    prediction: dict[str, Any]  # without its timestamp, added when written
    feedback: dict[str, Any] | None
    feedback_delay: float  # seconds


def _feature(spec: Numeric | Categorical, rng: random.Random, shift: bool) -> Any:
    if isinstance(spec, Categorical):
        weights = [1 / (i + 1) for i in range(len(spec.values))]  # Zipf-like
        return rng.choices(spec.values, weights)[0]
    if rng.random() < spec.missing:
        return None
    value = rng.gauss(spec.mean + (spec.std if shift else 0.0), spec.std)
    value = max(spec.minimum, math.exp(value) if spec.lognormal else value)
    return round(value) if spec.digits == 0 else round(value, spec.digits)


def _probabilities(profile: Profile, rng: random.Random) -> dict[str, float]:
    """The top class from the priors with a beta-distributed confidence of mean
    `profile.confidence` (at least 1/k), the rest spread at random over the others."""
    floor = 1 / len(profile.classes)
    mean = (profile.confidence - floor) / (1 - floor)
    confidence = floor + (1 - floor) * rng.betavariate(
        mean * _CONCENTRATION, (1 - mean) * _CONCENTRATION
    )
    top = rng.choices(profile.classes, profile.priors)[0]
    others = [c for c in profile.classes if c != top]
    shares = [rng.expovariate(1.0) for _ in others]
    scale = (1 - confidence) / sum(shares)
    return {top: confidence} | {c: s * scale for c, s in zip(others, shares, strict=True)}


def _actual(
    probabilities: dict[str, float], predicted: str, rng: random.Random, drift: bool
) -> str:
    if drift and rng.random() < DRIFT_FLIP:  # the world moved on, the model did not
        others = [c for c in probabilities if c != predicted]
        return rng.choices(others, [probabilities[c] + 1e-9 for c in others])[0]
    return rng.choices(list(probabilities), list(probabilities.values()))[0]


def generate(
    profile: Profile, rng: random.Random, id_prefix: str, drifted: Callable[[], bool]
) -> Iterator[Generated]:
    """Endless predictions with their feedback; the same for the same seeded `rng` and
    the same answers of `drifted` (asked once per prediction)."""
    error_types, error_weights = list(ERROR_TYPES), list(ERROR_TYPES.values())
    for n in itertools.count():
        drift = drifted()
        record: dict[str, Any] = {
            "id": f"{id_prefix}-{n:07d}",
            "features": {
                f.name: _feature(f, rng, drift and f.name == profile.drift_feature)
                for f in profile.features
            },
        }
        latency = rng.lognormvariate(math.log(profile.latency_ms), profile.latency_sigma)
        if rng.random() < profile.error_rate:
            error = rng.choices(error_types, error_weights)[0]
            if error == "FeatureStoreTimeout":
                latency = _TIMEOUT_MS + rng.uniform(0, 5)
            record |= {"prediction": None, "latency_ms": round(latency, 1), "error": error}
            yield Generated(record, None, 0.0)
            continue
        probabilities = _probabilities(profile, rng)
        predicted = max(probabilities, key=probabilities.__getitem__)
        actual = _actual(probabilities, predicted, rng, drift)
        record |= {
            "prediction": predicted,
            "probabilities": {c: round(probabilities[c], 3) for c in profile.classes},
            "latency_ms": round(latency, 1),
            "error": None,
        }
        feedback = {"id": record["id"], "actual": actual}
        delay = rng.uniform(*FEEDBACK_DELAY)
        yield Generated(record, feedback if rng.random() < FEEDBACK_SHARE else None, delay)


# ---- where -------------------------------------------------------------------------------


def active_versions(root: Path) -> dict[str, Path]:
    """Model name -> folder of its active version, chosen by the daemon's own registry
    (ACTIVE file, current/active/production symlink, else the newest)."""
    registry = ModelRegistry(
        RegistryConfig(roots=(RootConfig(root),)), LabelledCounter(), LabelledCounter()
    )
    registry.full_scan()
    return {view.model: view.directory for view in registry.snapshot.versions() if view.active}


def stamp_now(root: Path, now: datetime | None = None) -> int:
    """Move the `generated_at` of every metrics.json under `root` by one offset, so that
    the newest is NEWEST_AGE before `now` and the spacing between versions is kept: the
    example models are dated, and a model's age only means something relative to today.
    Files are replaced atomically (the daemon may be reading them). Returns how many
    files were stamped."""
    stamped: list[tuple[Path, dict[str, Any], datetime]] = []
    for path in sorted(root.rglob("metrics.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        generated = datetime.fromisoformat(document["generated_at"])
        if generated.tzinfo is None:
            generated = generated.replace(tzinfo=UTC)
        stamped.append((path, document, generated))
    if not stamped:
        return 0
    offset = (now or datetime.now(UTC)) - NEWEST_AGE - max(g for _, _, g in stamped)
    for path, document, generated in stamped:
        document["generated_at"] = (generated + offset).isoformat(timespec="seconds")
        atomic_write_bytes(path, (json.dumps(document, indent=2) + "\n").encode())
    return len(stamped)


# ---- the loop ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Target:
    model: str
    drift_feature: str
    predictions: BinaryIO
    feedback: BinaryIO
    stream: Iterator[Generated]


def _open_targets(
    files: ExitStack, root: Path, seed: int, rate: float, drifted: Callable[[], bool]
) -> list[_Target]:
    targets = []
    for model, folder in sorted(active_versions(root).items()):
        opened = []
        for kind in ("predictions", "feedback"):
            (folder / kind).mkdir(exist_ok=True)
            opened.append(files.enter_context((folder / kind / "demo.jsonl").open("ab")))
        profile = PROFILES.get(model, GENERIC)
        rng = random.Random(f"{seed}:{model}")  # noqa: S311 - synthetic data, seeded on purpose
        stream = generate(profile, rng, f"{model}-{seed}", drifted)
        targets.append(_Target(model, profile.drift_feature, opened[0], opened[1], stream))
        print(f"demo: {rate:g} predictions/s for {model}/{folder.name} -> {opened[0].name}")
    return targets


def _write(f: BinaryIO, record: dict[str, Any]) -> None:
    f.write(json.dumps(record).encode() + b"\n")  # one complete line per write()
    f.flush()


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@contextmanager
def _stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` (from the main thread only, where Python allows it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run(
    models_dir: Path,
    *,
    rate: float = 20.0,
    drift_after: float = 180.0,
    seed: int | None = None,
    duration: float | None = None,
    stop: threading.Event | None = None,
    stamp: bool = False,
) -> int:
    """Write `rate` predictions a second per model until `duration` passes or SIGINT or
    SIGTERM (or `stop`) arrives; with `stamp`, `stamp_now` the models first. Returns the
    exit code."""
    if stamp:
        print(f"demo: stamped {stamp_now(models_dir)} metrics.json relative to now", flush=True)
    seed = secrets.randbelow(1_000_000) if seed is None else seed
    stop = threading.Event() if stop is None else stop
    start = time.monotonic()
    drift_at, deadline = start + drift_after, start + (math.inf if duration is None else duration)

    def drifted() -> bool:
        return time.monotonic() >= drift_at

    predictions = feedbacks = 0
    with _stopped_by_signals(stop), ExitStack() as files:
        targets = _open_targets(files, models_dir, seed, rate, drifted)
        if not targets:
            print(
                f"model-health-exporter demo: no model versions under {models_dir}", file=sys.stderr
            )
            return exit_codes.USAGE
        print(f"demo: random seed {seed}; drift in {drift_after:g}s; Ctrl-C stops", flush=True)
        pending: list[tuple[float, int, BinaryIO, dict[str, Any]]] = []  # feedback, by due time
        interval = 1 / (rate * len(targets))
        next_at, announced = start, False
        while not stop.is_set() and (now := time.monotonic()) < deadline:
            if not announced and now >= drift_at:
                announced = True
                shifted = ", ".join(f"{t.model}.{t.drift_feature}" for t in targets)
                print(
                    f"demo: drift injected: {shifted} shifted by +1 std and {DRIFT_FLIP:.0%} of "
                    "the labels drawn away from the prediction: live accuracy drops",
                    flush=True,
                )
            while pending and pending[0][0] <= now:
                _, _, f, feedback = heapq.heappop(pending)
                _write(f, feedback)
                feedbacks += 1
            if now < next_at:
                stop.wait(min(next_at, deadline, pending[0][0] if pending else math.inf) - now)
                continue
            target = targets[predictions % len(targets)]
            item = next(target.stream)
            _write(target.predictions, {"timestamp": _timestamp(), **item.prediction})
            if item.feedback is not None:
                due = now + item.feedback_delay
                heapq.heappush(pending, (due, predictions, target.feedback, item.feedback))
            predictions += 1
            next_at = max(next_at + interval, now - _MAX_LAG)  # no long burst after a stall
    print(f"demo: stopped; wrote {predictions} predictions and {feedbacks} feedback", flush=True)
    return exit_codes.OK
