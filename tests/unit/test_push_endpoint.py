"""The push endpoint in-process, over a real registry and spool: what it writes for the
tailer (model, version and feature names filled in), and the join's bounded wait."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model_health_exporter.ingress.push import PushConfig, PushEndpoint, PushModel
from model_health_exporter.records import Prediction, parse_line
from model_health_exporter.sources.spool import Spool
from model_health_exporter.state.counters import LabelledCounter
from model_health_exporter.state.registry import ModelRegistry, RegistryConfig, RootConfig
from tests.support import write_json

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    root = tmp_path / "models"
    metrics = {"accuracy": 0.9, "dataset_stats": {"column_names": COLUMNS}}
    write_json(root / "iris" / "v1" / "metrics.json", metrics)
    write_json(root / "iris" / "v2" / "metrics.json", {"accuracy": 0.9})
    (root / "iris" / "ACTIVE").write_text("v1\n")
    registry = ModelRegistry(
        RegistryConfig(roots=(RootConfig(root, "nested"),)), LabelledCounter(), LabelledCounter()
    )
    registry.full_scan()
    return registry


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    spool = Spool(tmp_path / "spool")
    yield spool
    spool.close()


def endpoint(registry: ModelRegistry, spool: Spool, **config: Any) -> PushEndpoint:
    return PushEndpoint(spool, lambda: registry.snapshot, PushConfig(**config), LabelledCounter())


def call(app: PushEndpoint, path: str, body: bytes, **headers: str) -> tuple[str, dict[str, Any]]:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **{f"HTTP_{k.upper()}": v for k, v in headers.items()},
    }
    answer: list[str] = []
    out = app(environ, lambda status, _headers: answer.append(status))
    return answer[0], json.loads(b"".join(out))


def spooled(spool: Spool) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(spool.directory.glob("spool-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def kserve(kind: str, data: dict[str, Any], event_id: str = "e1") -> dict[str, str]:
    return {
        "CE_ID": event_id,
        "CE_TYPE": f"org.kubeflow.serving.inference.{kind}",
        "CE_SOURCE": "x",
        "CE_SPECVERSION": "1.0",
        "CE_INFERENCESERVICENAME": "iris",
        "body": json.dumps(data),
    }


def send_event(app: PushEndpoint, event: dict[str, str]) -> tuple[str, dict[str, Any]]:
    body = event.pop("body").encode()
    return call(app, "/api/v1/events", body, **event)


def test_records_get_model_and_active_version(registry: ModelRegistry, spool: Spool) -> None:
    app = endpoint(registry, spool)
    try:
        status, answer = call(app, "/api/v1/predictions/iris", b'[{"id": 1, "prediction": "a"}]')
        assert (status, answer) == ("200 OK", {"accepted": 1, "duplicate": False})
        record = spooled(spool)[0]
        assert (record["model"], record["version"]) == ("iris", "v1")
        parsed = parse_line(json.dumps(record).encode())
        assert isinstance(parsed, Prediction) and parsed.label == "a"
    finally:
        app.close()


def test_positional_inputs_named_from_metrics_column_names(
    registry: ModelRegistry, spool: Spool
) -> None:
    app = endpoint(registry, spool)
    try:
        assert (
            send_event(app, kserve("request", {"instances": [[6.8, 2.8, 4.8, 1.4]]}))[0] == "200 OK"
        )
        assert spooled(spool) == []  # waits for its response
        status, answer = send_event(app, kserve("response", {"predictions": [1]}))
        assert (status, answer["accepted"]) == ("200 OK", 1)
        (record,) = spooled(spool)
        assert record["features"] == dict(zip(COLUMNS, [6.8, 2.8, 4.8, 1.4], strict=True))
        assert (record["id"], record["prediction"], record["model"]) == ("e1", "1", "iris")
    finally:
        app.close()


def test_configured_names_win(registry: ModelRegistry, spool: Spool) -> None:
    models = {
        "sklearn-iris": PushModel(
            model="iris", version="v2", features=("a", "b"), classes=("x", "y")
        )
    }
    app = endpoint(registry, spool, models=models)
    try:
        request = kserve("request", {"instances": [[1, 2]]})
        response = kserve("response", {"predictions": [[0.3, 0.7]]})
        for event in (request, response):
            event["CE_INFERENCESERVICENAME"] = "sklearn-iris"
            assert send_event(app, event)[0] == "200 OK"
        (record,) = spooled(spool)
        assert record["version"] == "v2" and record["features"] == {"a": 1, "b": 2}
        assert record["prediction"] == "y" and record["probabilities"] == {"x": 0.3, "y": 0.7}
    finally:
        app.close()


def test_unpaired_halves_after_the_wait(registry: ModelRegistry, spool: Spool) -> None:
    app = endpoint(registry, spool, join_wait=3600.0)
    try:
        send_event(app, kserve("response", {"predictions": [1]}, event_id="only-response"))
        send_event(app, kserve("request", {"instances": [[1, 2, 3, 4]]}, event_id="only-request"))
        assert app.waiting == 2
        app.expire(now=1e18)
        assert app.waiting == 0
        (record,) = spooled(spool)
        assert record["id"] == "only-response" and "features" not in record
        assert app.unpaired.values() == {("request",): 1.0, ("response",): 1.0}
        # a late partner of a response already counted is a duplicate
        _, answer = send_event(
            app, kserve("request", {"instances": [[1, 2, 3, 4]]}, event_id="only-response")
        )
        assert answer["duplicate"] is True
    finally:
        app.close()


def test_waiting_events_are_bounded_in_bytes(registry: ModelRegistry, spool: Spool) -> None:
    app = endpoint(registry, spool, max_waiting_bytes=450)
    try:
        rows = {"instances": [[1.5, 2.5, 3.5, 4.5]] * 5}
        assert send_event(app, kserve("request", rows, event_id="a"))[0] == "200 OK"
        status, answer = send_event(app, kserve("request", rows, event_id="b"))
        assert (status, answer["reason"]) == ("503 Service Unavailable", "spool_full")
        # its partner still joins, and frees the room
        assert (
            send_event(app, kserve("response", {"predictions": [1] * 5}, event_id="a"))[0]
            == "200 OK"
        )
        assert app.waiting == 0
        assert send_event(app, kserve("request", rows, event_id="b"))[0] == "200 OK"
    finally:
        app.close()


def test_waiting_events_come_back_after_a_restart(registry: ModelRegistry, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    app = endpoint(registry, spool)
    send_event(app, kserve("request", {"instances": [[1, 2, 3, 4]]}, event_id="r"))
    app.close()
    spool.close()
    spool = Spool(tmp_path / "spool")
    again = endpoint(registry, spool)
    try:
        assert again.waiting == 1
        send_event(again, kserve("response", {"predictions": [0]}, event_id="r"))
        (record,) = spooled(spool)
        assert record["features"]["petal_width"] == 4
    finally:
        again.close()
        spool.close()


def test_reference_csv_column_order_names_inputs(registry: ModelRegistry, spool: Spool) -> None:
    """The version's reference.csv (what drift compares with) wins over column_names."""
    version = registry.snapshot.models["iris"].versions[0].directory
    (version / "reference.csv").write_text("id,petal_width,sepal_length,prediction\n1,0.2,5.1,a\n")
    app = endpoint(registry, spool)
    try:
        send_event(app, kserve("request", {"instances": [[0.3, 6.0]]}))
        send_event(app, kserve("response", {"predictions": ["a"]}))
        (record,) = spooled(spool)
        assert record["features"] == {"petal_width": 0.3, "sepal_length": 6.0}
    finally:
        app.close()
