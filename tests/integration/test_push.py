"""The push endpoints, through the daemon as users start it: batches of records and the
KServe / Seldon payload-logger CloudEvents (built with the `cloudevents` SDK), counted in
routing_ml_predictions_total and live accuracy; retries, kill -9, concurrency, errors."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from cloudevents.v1.conversion import to_binary, to_structured
from cloudevents.v1.http import CloudEvent

from tests.support import RunningDaemon, closed_by_server, free_port, wait_until, write_json
from tests.tls_support import bcrypt_hash

pytestmark = pytest.mark.integration

NS = "routing_ml"
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_metrics() -> dict[str, Any]:
    return {
        "generated_at": "2026-11-01T12:00:00+00:00",
        "model_version": "v1",
        "training_samples": 1500,
        "dataset_stats": {"total_samples": 1500, "column_names": COLUMNS},
        "accuracy": 0.95,
    }


def make_models(root: Path) -> Path:
    models = root / "models"
    write_json(models / "sklearn-iris" / "v1" / "metrics.json", iris_metrics())
    write_json(models / "fraud" / "v1" / "metrics.json", iris_metrics())
    write_json(models / "fraud" / "v2" / "metrics.json", iris_metrics())
    (models / "fraud" / "ACTIVE").write_text("v2\n")
    return models


def start(tmp_path: Path, *extra: str) -> RunningDaemon:
    models = tmp_path / "models"
    if not models.exists():
        make_models(tmp_path)
    daemon = RunningDaemon(
        tmp_path,
        [
            f"--models.dir={models}",
            f"--state.dir={tmp_path / 'state'}",
            "--web.enable-push=true",
            "--logs.poll-interval=0.05",
            "--logs.checkpoint-interval=0.2",
            "--logs.window-min-samples=1",
            *extra,
        ],
    )
    try:
        daemon.wait_ready(timeout=60)
    except BaseException:
        daemon.stop()
        raise
    return daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    running = start(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def post(
    daemon: RunningDaemon,
    path: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any], Any]:
    request = urllib.request.Request(
        daemon.url + path,
        data=body,
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read()), r.headers
    except urllib.error.HTTPError as exc:
        with exc:
            text = exc.read()
            answer = json.loads(text) if exc.headers["Content-Type"] == "application/json" else {}
            return exc.code, answer, exc.headers


def post_event(daemon: RunningDaemon, event: CloudEvent, structured: bool = False) -> int:
    headers, body = to_structured(event) if structured else to_binary(event)
    status, answer, _ = post(daemon, "/api/v1/events", body, dict(headers))
    assert status == 200, answer
    return status


def predictions(daemon: RunningDaemon, model: str, version: str) -> float | None:
    return daemon.value(f"{NS}_predictions_total", model=model, version=version)


def records(n: int, start: int = 0, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": f"r{i}",
            "prediction": "a" if i % 2 else "b",
            "probabilities": {"a": 0.8, "b": 0.2} if i % 2 else {"a": 0.1, "b": 0.9},
            "latency_ms": 12,
            "features": {"x": i, "colour": "red"},
            **extra,
        }
        for i in range(start, start + n)
    ]


def kserve_event(
    kind: str, event_id: str, data: dict[str, Any], service: str = "sklearn-iris"
) -> CloudEvent:
    return CloudEvent(
        {
            "type": f"org.kubeflow.serving.inference.{kind}",
            "source": "http://localhost:9081/",
            "id": event_id,
            "inferenceservicename": service,
            "namespace": "default",
            "component": "predictor",
            "endpoint": "",
        },
        data,
    )


# ---- batches of records -------------------------------------------------------------------


def test_json_array_lines_and_gzip_then_feedback_gives_live_accuracy(daemon: RunningDaemon) -> None:
    status, answer, _ = post(
        daemon, "/api/v1/predictions/sklearn-iris", json.dumps(records(4)).encode()
    )
    assert (status, answer) == (200, {"accepted": 4, "duplicate": False})
    lines = "\n".join(json.dumps(r) for r in records(3, start=4)).encode()
    status, _, _ = post(
        daemon,
        "/api/v1/predictions/sklearn-iris/v1",
        gzip.compress(lines),
        {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
    )
    assert status == 200
    # model and version in the records themselves
    status, _, _ = post(
        daemon,
        "/api/v1/predictions",
        json.dumps(records(1, start=7, model="sklearn-iris", version="v1")).encode(),
    )
    assert status == 200
    daemon.wait_value(f"{NS}_predictions_total", 8.0, model="sklearn-iris", version="v1")
    # feedback: r0..r7 predicted b,a,b,a,...; the truth says "a" for all: half right
    truth = [{"id": f"r{i}", "actual": "a"} for i in range(8)]
    status, answer, _ = post(daemon, "/api/v1/feedback/sklearn-iris", json.dumps(truth).encode())
    assert (status, answer["accepted"]) == (200, 8)
    daemon.wait_value(f"{NS}_feedback_total", 8.0, model="sklearn-iris", version="v1")
    daemon.wait_value(f"{NS}_live_accuracy", 0.5, model="sklearn-iris", version="v1")
    assert daemon.value(f"{NS}_exporter_push_records_total") == 16.0
    assert daemon.value(f"{NS}_exporter_push_requests_total", result="accepted") == 4.0


def test_version_defaults_to_the_active_one(daemon: RunningDaemon) -> None:
    status, _, _ = post(daemon, "/api/v1/predictions/fraud", json.dumps(records(2)).encode())
    assert status == 200
    daemon.wait_value(f"{NS}_predictions_total", 2.0, model="fraud", version="v2")
    assert predictions(daemon, "fraud", "v1") is None


def test_retries_with_the_same_idempotency_key_count_once(daemon: RunningDaemon) -> None:
    body = json.dumps(records(5)).encode()
    for _ in range(3):
        status, _, _ = post(
            daemon, "/api/v1/predictions/sklearn-iris", body, {"Idempotency-Key": "batch-1"}
        )
        assert status == 200
    status, answer, _ = post(
        daemon, "/api/v1/predictions/sklearn-iris", body, {"Idempotency-Key": "batch-1"}
    )
    assert answer == {"accepted": 0, "duplicate": True}
    post(daemon, "/api/v1/predictions/sklearn-iris", body, {"Idempotency-Key": "batch-2"})
    daemon.wait_value(f"{NS}_predictions_total", 10.0, model="sklearn-iris", version="v1")
    assert daemon.value(f"{NS}_exporter_push_requests_total", result="duplicate") == 3.0


def test_kill_9_after_2xx_counts_each_batch_exactly_once(tmp_path: Path) -> None:
    daemon = start(tmp_path)
    try:
        for i in range(5):
            status, _, _ = post(
                daemon,
                "/api/v1/predictions/sklearn-iris",
                json.dumps(records(10, start=10 * i)).encode(),
                {"Idempotency-Key": f"k{i}"},
            )
            assert status == 200
        daemon.proc.send_signal(signal.SIGKILL)  # right after the last 2xx
        daemon.proc.wait(5)
    finally:
        daemon.stop()
    again = start(tmp_path)
    try:
        again.wait_value(f"{NS}_predictions_total", 50.0, model="sklearn-iris", version="v1")
        # a sender that did not hear the answer retries: still counted once
        status, answer, _ = post(
            again,
            "/api/v1/predictions/sklearn-iris",
            json.dumps(records(10, start=40)).encode(),
            {"Idempotency-Key": "k4"},
        )
        assert (status, answer["duplicate"]) == (200, True)
        # the spool files read and checkpointed are deleted
        spool = tmp_path / "state" / "spool"
        wait_until(lambda: not list(spool.glob("spool-*.jsonl")), 10, "spool files deleted")
        assert again.value(f"{NS}_predictions_total", model="sklearn-iris", version="v1") == 50.0
    finally:
        again.stop()
    # a restart after the files were deleted still knows the keys
    third = start(tmp_path)
    try:
        status, answer, _ = post(
            third,
            "/api/v1/predictions/sklearn-iris",
            json.dumps(records(10)).encode(),
            {"Idempotency-Key": "k0"},
        )
        assert answer["duplicate"] is True
        assert third.value(f"{NS}_predictions_total", model="sklearn-iris", version="v1") == 50.0
    finally:
        third.stop()


def test_concurrent_clients(daemon: RunningDaemon) -> None:
    failures: list[object] = []

    def client(n: int) -> None:
        for j in range(20):
            status, answer, _ = post(
                daemon,
                "/api/v1/predictions/sklearn-iris",
                json.dumps(records(5, start=1000 * n + 5 * j)).encode(),
            )
            if status != 200:
                failures.append(answer)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    daemon.wait_value(f"{NS}_predictions_total", 800.0, model="sklearn-iris", version="v1")


# ---- errors -------------------------------------------------------------------------------


def error_count(daemon: RunningDaemon, reason: str) -> float | None:
    return daemon.value(f"{NS}_exporter_errors_total", source="push", reason=reason)


def test_every_error_status(daemon: RunningDaemon, tmp_path: Path) -> None:
    good = records(3)
    bad = [*good[:1], {"id": "x", "prediction": "a", "probabilities": {"b": 1.0}}, *good[1:]]
    status, answer, _ = post(daemon, "/api/v1/predictions/sklearn-iris", json.dumps(bad).encode())
    assert status == 400
    assert answer["reason"] == "invalid_record" and answer["index"] == 1
    assert "probabilities" in answer["error"]
    status, answer, _ = post(daemon, "/api/v1/predictions/sklearn-iris", b'[{"id": 1,')
    assert (status, answer["reason"]) == (400, "invalid_json")
    lines = b'{"id": "a", "prediction": "x"}\n{"id": "b", "prediction": "x", "latency_ms": -1}\n'
    status, answer, _ = post(
        daemon, "/api/v1/predictions/sklearn-iris", lines, {"Content-Type": "application/x-ndjson"}
    )
    assert (status, answer["reason"], answer["index"]) == (400, "invalid_latency", 1)
    status, answer, _ = post(daemon, "/api/v1/predictions/nope", json.dumps(good).encode())
    assert (status, answer["reason"]) == (400, "unknown_model")
    status, answer, _ = post(
        daemon, "/api/v1/predictions/sklearn-iris/v9", json.dumps(good).encode()
    )
    assert (status, answer["reason"]) == (400, "unknown_model")
    status, answer, _ = post(daemon, "/api/v1/feedback/sklearn-iris", json.dumps(good).encode())
    assert (status, answer["reason"], answer["index"]) == (400, "invalid_record", 0)
    status, answer, _ = post(
        daemon,
        "/api/v1/predictions/sklearn-iris",
        b"a=b",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, answer["reason"]) == (415, "unsupported_media_type")
    status, answer, _ = post(
        daemon, "/api/v1/predictions/sklearn-iris", b"[]", {"Content-Encoding": "br"}
    )
    assert status == 415
    # refused from Content-Length alone, before the body is read
    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=10)
    connection.putrequest("POST", "/api/v1/predictions/sklearn-iris")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(17 << 20))
    connection.endheaders()
    response = connection.getresponse()
    status, answer = response.status, json.loads(response.read())
    connection.close()
    assert (status, answer["reason"]) == (413, "too_large")
    # a gzip bomb is cut at the limit, not inflated whole
    status, answer, _ = post(
        daemon,
        "/api/v1/predictions/sklearn-iris",
        gzip.compress(b" " * (40 << 20)),
        {"Content-Encoding": "gzip"},
    )
    assert (status, answer["reason"]) == (413, "too_large")
    status, _, _ = daemon.get("/api/v1/predictions")
    assert status == 405
    # nothing of the refused batches was counted, every refusal was
    daemon.wait_value(f"{NS}_exporter_push_records_total", 0.0)
    for reason, n in [
        ("invalid_record", 2.0),
        ("invalid_json", 1.0),
        ("invalid_latency", 1.0),
        ("unknown_model", 2.0),
        ("unsupported_media_type", 2.0),
        ("too_large", 2.0),
    ]:
        assert error_count(daemon, reason) == n, reason
    assert predictions(daemon, "sklearn-iris", "v1") is None


def test_spool_bound_gives_503_with_retry_after(tmp_path: Path) -> None:
    daemon = start(tmp_path, "--push.spool-max-bytes=3000", "--logs.checkpoint-interval=30")
    try:
        body = json.dumps(records(5)).encode()
        statuses = []
        for _ in range(4):
            status, answer, headers = post(daemon, "/api/v1/predictions/sklearn-iris", body)
            statuses.append(status)
        assert statuses[0] == 200 and statuses[-1] == 503
        assert answer["reason"] == "spool_full" and int(headers["Retry-After"]) > 0
        assert error_count(daemon, "spool_full") == float(statuses.count(503))
    finally:
        daemon.stop()


def test_off_unless_enabled(tmp_path: Path) -> None:
    models = make_models(tmp_path)
    daemon = RunningDaemon(tmp_path, [f"--models.dir={models}"])
    try:
        daemon.wait_ready()
        status, _, _ = post(daemon, "/api/v1/predictions/sklearn-iris", b"[]")
        assert status == 405
        assert daemon.value(f"{NS}_exporter_push_records_total") == 0.0
    finally:
        daemon.stop()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_health_exporter", "run", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_refuses_to_open_push_beyond_loopback_without_auth(tmp_path: Path) -> None:
    models = make_models(tmp_path)
    common = [f"--models.dir={models}", f"--state.dir={tmp_path / 's'}", "--web.enable-push=true"]
    result = run_cli(*common, f"--web.listen-address=:{free_port()}")
    assert result.returncode == 2
    assert "without authentication" in result.stderr and "--web.push-without-auth" in result.stderr
    result = run_cli("--models.dir", str(models), "--web.enable-push=true")
    assert result.returncode == 2 and "--state.dir" in result.stderr


# An address beyond loopback that no interface here has (TEST-NET-1, RFC 5737): a daemon
# that passes the exposure check then fails to bind it, so no test listens beyond loopback.
UNASSIGNED = "192.0.2.1"


def test_explicit_opt_in_passes_the_exposure_check(tmp_path: Path) -> None:
    models = make_models(tmp_path)
    common = [f"--models.dir={models}", f"--state.dir={tmp_path / 's'}", "--web.enable-push=true"]
    address = f"--web.listen-address={UNASSIGNED}:{free_port()}"
    refused = run_cli(*common, address)
    assert refused.returncode == 2 and "without authentication" in refused.stderr
    opted_in = run_cli(*common, address, "--web.push-without-auth=true")
    assert "without authentication" not in opted_in.stderr
    assert "cannot assign requested address" in opted_in.stdout.lower(), opted_in


def test_basic_auth_opens_beyond_loopback_and_guards_the_push(tmp_path: Path) -> None:
    models = make_models(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"basic_auth_users": {"loader": bcrypt_hash("s3cret")}}))
    common = [f"--models.dir={models}", f"--state.dir={tmp_path / 's'}", "--web.enable-push=true"]
    beyond = run_cli(
        *common, f"--web.listen-address={UNASSIGNED}:{free_port()}", f"--web.config.file={web}"
    )
    assert "without authentication" not in beyond.stderr
    assert "cannot assign requested address" in beyond.stdout.lower(), beyond

    daemon = start(tmp_path, f"--web.config.file={web}", "--web.probes-without-auth=true")
    try:
        body = json.dumps(records(3)).encode()
        status, _, headers = post(daemon, "/api/v1/predictions/sklearn-iris/v1", body)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        token = base64.b64encode(b"loader:s3cret").decode()
        status, answer, _ = post(
            daemon,
            "/api/v1/predictions/sklearn-iris/v1",
            body,
            {"Authorization": f"Basic {token}"},
        )
        assert status == 200, answer
    finally:
        daemon.stop()


# ---- KServe and Seldon payload loggers ----------------------------------------------------


def test_kserve_v1_request_then_response(daemon: RunningDaemon) -> None:
    post_event(
        daemon,
        kserve_event(
            "request", "ev-1", {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}
        ),
    )
    post_event(daemon, kserve_event("response", "ev-1", {"predictions": [1, 2]}))
    daemon.wait_value(f"{NS}_predictions_total", 2.0, model="sklearn-iris", version="v1")
    # feedback joins by <ce-id>/<row>
    feedback = [{"id": "ev-1/0", "actual": "1"}, {"id": "ev-1/1", "actual": "1"}]
    post(daemon, "/api/v1/feedback/sklearn-iris", json.dumps(feedback).encode())
    daemon.wait_value(f"{NS}_live_accuracy", 0.5, model="sklearn-iris", version="v1")


def test_kserve_v2_response_before_request(daemon: RunningDaemon) -> None:
    request = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 4],
                "datatype": "FP32",
                "data": [6.8, 2.8, 4.8, 1.4, 6.0, 3.4, 4.5, 1.6],
            }
        ]
    }
    response = {
        "model_name": "sklearn-iris",
        "outputs": [
            {
                "name": "output-0",
                "shape": [2, 3],
                "datatype": "FP32",
                "data": [0.1, 0.7, 0.2, 0.6, 0.3, 0.1],
            }
        ],
    }
    post_event(daemon, kserve_event("response", "ev-2", response))
    assert daemon.value(f"{NS}_exporter_push_events_waiting") == 1.0
    post_event(daemon, kserve_event("request", "ev-2", request))
    daemon.wait_value(f"{NS}_predictions_total", 2.0, model="sklearn-iris", version="v1")
    assert daemon.value(f"{NS}_exporter_push_events_waiting") == 0.0
    # probabilities: confidence 0.7 and 0.6
    assert (
        daemon.value(f"{NS}_prediction_confidence_count", model="sklearn-iris", version="v1") == 2.0
    )
    # retries of either half are acknowledged, not counted again
    post_event(daemon, kserve_event("request", "ev-2", request))
    post_event(daemon, kserve_event("response", "ev-2", response))
    assert daemon.value(f"{NS}_exporter_push_requests_total", result="duplicate") == 2.0
    assert predictions(daemon, "sklearn-iris", "v1") == 2.0


def test_structured_mode(daemon: RunningDaemon) -> None:
    post_event(
        daemon, kserve_event("request", "ev-3", {"instances": [[1, 2, 3, 4]]}), structured=True
    )
    post_event(daemon, kserve_event("response", "ev-3", {"predictions": [0]}), structured=True)
    daemon.wait_value(f"{NS}_predictions_total", 1.0, model="sklearn-iris", version="v1")


def test_seldon_request_logger(daemon: RunningDaemon) -> None:
    def seldon(kind: str, data: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        return json.dumps(data).encode(), {
            "Ce-Id": f"{kind}-id",  # Seldon joins by Ce-Requestid
            "Ce-Type": f"io.seldon.serving.inference.{kind}",
            "Ce-Source": "io.seldon.serving.deployment.mlserver",
            "Ce-Specversion": "1.0",
            "Ce-Requestid": "req-9",
            "Ce-Modelid": "fraud_1",
            "Ce-Inferenceservicename": "mlserver",
            "Ce-Namespace": "seldon",
            "Ce-Endpoint": "fraud_1",
        }

    body, headers = seldon("request", {"data": {"names": ["a", "b"], "ndarray": [[1, 2], [3, 4]]}})
    assert post(daemon, "/api/v1/events", body, headers)[0] == 200
    body, headers = seldon(
        "response", {"data": {"names": ["t:0", "t:1"], "ndarray": [[0.9, 0.1], [0.2, 0.8]]}}
    )
    assert post(daemon, "/api/v1/events", body, headers)[0] == 200
    daemon.wait_value(f"{NS}_predictions_total", 2.0, model="fraud", version="v2")


def test_unpaired_response_counts_without_features(tmp_path: Path) -> None:
    daemon = start(tmp_path, "--push.join-wait=0.5")
    try:
        post_event(daemon, kserve_event("response", "lonely", {"predictions": [1]}))
        post_event(daemon, kserve_event("request", "forgotten", {"instances": [[1, 2, 3, 4]]}))
        daemon.wait_value(f"{NS}_predictions_total", 1.0, model="sklearn-iris", version="v1")
        daemon.wait_value(f"{NS}_exporter_push_unpaired_events_total", 1.0, half="request")
        assert daemon.value(f"{NS}_exporter_push_unpaired_events_total", half="response") == 1.0
    finally:
        daemon.stop()


def test_waiting_half_survives_kill_9(tmp_path: Path) -> None:
    daemon = start(tmp_path)
    try:
        post_event(daemon, kserve_event("request", "ev-k", {"instances": [[1, 2, 3, 4]]}))
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(5)
    finally:
        daemon.stop()
    again = start(tmp_path)
    try:
        assert again.value(f"{NS}_exporter_push_events_waiting") == 1.0
        post_event(again, kserve_event("response", "ev-k", {"predictions": [2]}))
        again.wait_value(f"{NS}_predictions_total", 1.0, model="sklearn-iris", version="v1")
    finally:
        again.stop()


def test_bad_events(daemon: RunningDaemon) -> None:
    event = kserve_event("request", "ev-b", {"instances": [[1, 2]]}, service="unknown-svc")
    headers, body = to_binary(event)
    status, answer, _ = post(daemon, "/api/v1/events", body, dict(headers))
    assert (status, answer["reason"]) == (400, "unknown_model")
    headers, body = to_binary(
        CloudEvent({"type": "com.example.other", "source": "x", "id": "1"}, {})
    )
    status, answer, _ = post(daemon, "/api/v1/events", body, dict(headers))
    assert (status, answer["reason"]) == (400, "unknown_event_type")
    headers, body = to_binary(
        kserve_event("response", "ev-c", {"outputs": [{"name": "o", "shape": [2, 2], "data": [1]}]})
    )
    status, answer, _ = post(daemon, "/api/v1/events", body, dict(headers))
    assert (status, answer["reason"]) == (400, "invalid_event")
    assert "shape" in answer["error"]


def test_kserve_features_reach_drift(tmp_path: Path) -> None:
    """Positional inputs named by metrics.json's column_names: the first 20 predictions
    become the reference, the next ones are compared with it, per named feature."""
    daemon = start(tmp_path, "--drift.reference-predictions=20")
    try:
        rows = [[5.0 + i % 7, 3.0, 1.5 + i % 3, 0.2 * (i % 5)] for i in range(60)]
        post_event(daemon, kserve_event("request", "ev-d", {"instances": rows}))
        post_event(
            daemon, kserve_event("response", "ev-d", {"predictions": [i % 3 for i in range(60)]})
        )
        daemon.wait_value(f"{NS}_predictions_total", 60.0, model="sklearn-iris", version="v1")
        wait_until(
            lambda: (
                daemon.value(
                    f"{NS}_feature_psi", model="sklearn-iris", version="v1", feature="petal_width"
                )
                is not None
            ),
            20,
            "drift of the named feature petal_width",
        )
    finally:
        daemon.stop()


# ---- Transfer-Encoding: chunked ----------------------------------------------------------

PUSH_PATH = "/api/v1/predictions/sklearn-iris"


def chunked_head(path: str = PUSH_PATH, close: bool = True) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Transfer-Encoding: chunked\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}"
        "\r\n"
    ).encode()


def framed(data: bytes, size: int) -> bytes:
    """`data` as chunks of `size` bytes, the last chunk and no trailer."""
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def read_response(conn: socket.socket) -> tuple[int, dict[str, Any], bytes]:
    """One response (it has a Content-Length): status, JSON answer, what came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = conn.recv(65536)
        assert chunk, "connection closed inside the response body"
        rest += chunk
    return int(lines[0].split()[1]), json.loads(rest[:length]), rest[length:]


def test_chunked_bodies_are_taken_and_keep_the_connection(daemon: RunningDaemon) -> None:
    body = json.dumps(records(5)).encode()
    first = framed(body, 7)
    # a chunk extension and a trailer field are allowed, and ignored
    second = json.dumps(records(3, start=5)).encode()
    second_framed = b"%x;note=1\r\n%s\r\n0\r\nX-Checksum: none\r\n\r\n" % (len(second), second)
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as conn:
        conn.sendall(chunked_head(close=False) + first)
        status, answer, rest = read_response(conn)
        assert (status, answer["accepted"]) == (200, 5), answer
        assert rest == b""
        conn.sendall(chunked_head() + second_framed)  # the same connection, kept alive
        status, answer, _ = read_response(conn)
        assert (status, answer["accepted"]) == (200, 3), answer
    daemon.wait_value(f"{NS}_predictions_total", 8.0, model="sklearn-iris", version="v1")


def test_an_oversized_chunked_body_is_refused_once_past_the_limit(tmp_path: Path) -> None:
    daemon = start(tmp_path, "--push.max-request-bytes=1000")
    try:
        for body in (
            b"40000000\r\n" + b" " * 1001,  # one chunk declared 1 GiB, 1,001 bytes of it sent
            b"".join(b"64\r\n" + b" " * 100 + b"\r\n" for _ in range(11)),  # 11 x 100 bytes
        ):
            with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as conn:
                conn.sendall(chunked_head(close=False) + body)  # and no more: no last chunk
                status, answer, _ = read_response(conn)
                assert (status, answer["reason"]) == (413, "too_large"), answer
                assert "1000-byte limit" in answer["error"]
                assert closed_by_server(conn, wait=5)  # the rest is not waited for
        assert error_count(daemon, "too_large") == 2.0
        assert daemon.value(f"{NS}_exporter_push_records_total") == 0.0
    finally:
        daemon.stop()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"zz\r\n[]\r\n0\r\n\r\n", "chunk size 'zz' is not a hexadecimal number"),
        (b"0x2\r\n[]\r\n0\r\n\r\n", "chunk size '0x2' is not a hexadecimal number"),
        (b"2\r\n[]XX0\r\n\r\n", "a chunk's data is not followed by CRLF"),
        (b"a\r\n[]", "the body ends inside a chunk"),
        (b"2\r\n[]\r\n", "the body ends in a chunk size line"),
        (b"1" * 5000 + b"\r\n", "a chunk size line is longer than 4096 bytes"),
    ],
    ids=["not-hex", "0x", "no-crlf", "short-chunk", "no-last-chunk", "long-line"],
)
def test_a_malformed_chunked_body_is_400(daemon: RunningDaemon, body: bytes, problem: str) -> None:
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as conn:
        conn.sendall(chunked_head(close=False) + body)
        conn.shutdown(socket.SHUT_WR)  # the body ends here
        status, answer, _ = read_response(conn)
        assert (status, answer["reason"]) == (400, "invalid_chunked"), answer
        assert answer["error"] == f"Transfer-Encoding chunked: {problem}"
        assert closed_by_server(conn, wait=5)
    assert error_count(daemon, "invalid_chunked") == 1.0
    assert daemon.value(f"{NS}_exporter_push_records_total") == 0.0


def read_to_close(conn: socket.socket, timeout: float = 5) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout` passes
    with nothing more: then the connection is still open and the test fails on it)."""
    conn.settimeout(timeout)
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize(
    ("head", "problem"),
    [
        (
            "POST {path} HTTP/1.0\r\nConnection: Keep-Alive\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding in an HTTP/1.0 request",
        ),
        (
            "POST {path} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
            "Content-Length: 9\r\n",
            "both Transfer-Encoding and Content-Length",
        ),
    ],
    ids=["http-1.0", "with-content-length"],
)
def test_a_body_framed_two_ways_is_refused_and_nothing_in_it_is_read_as_a_request(
    daemon: RunningDaemon, head: str, problem: str
) -> None:
    """Read one way, the body would be pushed; read the other, what follows it would be
    taken for the next request on the connection (request smuggling, RFC 9112 6.1, 6.3)."""
    before = daemon.value(f"{NS}_exporter_push_records_total")
    smuggled = b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n"
    body = framed(json.dumps(records(2)).encode(), 7) + smuggled
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as conn:
        start_line = head.format(path=PUSH_PATH).encode()
        conn.sendall(start_line + b"Content-Type: application/json\r\n\r\n" + body)
        answer = read_to_close(conn)
    assert answer.count(b"\r\n\r\n") == 1 and answer.startswith(b"HTTP/1.1 400 "), answer
    assert f"{problem}: the body's length is ambiguous".encode() in answer
    assert daemon.value(f"{NS}_exporter_push_records_total") == before
