"""Decoding pushed bodies: batches, KServe v1 / v2 tensors, Seldon payloads, the join of
a request and its response, and the exposure rule of the push endpoints."""

from __future__ import annotations

import base64
import json

import pytest

from model_health_exporter.ingress.exposure import push_exposure_problem
from model_health_exporter.ingress.payloads import (
    Half,
    PayloadError,
    binary_event,
    decode_batch,
    join,
    request_rows,
    response_rows,
    structured_event,
)


def test_batch_forms() -> None:
    records = [{"id": 1, "prediction": "a"}, {"id": 2, "prediction": "b"}]
    assert decode_batch(json.dumps(records).encode(), "application/json") == records
    lines = b"\n".join(json.dumps(r).encode() for r in records) + b"\n\n"
    assert decode_batch(lines, "application/x-ndjson") == records
    assert decode_batch(lines, "application/json") == records  # JSON Lines sent as JSON
    assert decode_batch(b'{"id": 1, "prediction": "a"}', "application/json") == records[:1]


def test_batch_errors_name_the_record() -> None:
    with pytest.raises(PayloadError) as bad:
        decode_batch(b'{"id": 1}\n{"id": \n', "application/x-ndjson")
    assert (bad.value.reason, bad.value.index) == ("invalid_json", 1)
    with pytest.raises(PayloadError) as bad:
        decode_batch(b'[{"id": 1}, 3]', "application/json")
    assert (bad.value.reason, bad.value.index) == ("invalid_record", 1)
    with pytest.raises(PayloadError) as bad:
        decode_batch(b"  ", "application/json")
    assert bad.value.reason == "invalid_json"


def test_v1_instances_named_by_column_order_or_keys() -> None:
    columns = ["a", "b", "c"]
    data = {"instances": [[1, 2, 3], [4, 5, 6]]}
    assert request_rows(data, columns) == [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}]
    assert request_rows(data, None) == [{"0": 1, "1": 2, "2": 3}, {"0": 4, "1": 5, "2": 6}]
    # names that do not fit the width are not used
    assert request_rows({"instances": [[1, 2]]}, columns) == [{"0": 1, "1": 2}]
    assert request_rows({"instances": [{"x": 1, "y": "u"}]}, columns) == [{"x": 1, "y": "u"}]


def test_v2_tensor_row_major_and_per_feature_tensors() -> None:
    one = {
        "inputs": [
            {"name": "input-0", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}
        ]
    }
    assert request_rows(one, ["a", "b", "c"]) == [
        {"a": 1, "b": 2, "c": 3},
        {"a": 4, "b": 5, "c": 6},
    ]
    nested = {
        "inputs": [
            {"name": "x", "shape": [2, 3], "datatype": "INT64", "data": [[1, 2, 3], [4, 5, 6]]}
        ]
    }
    assert request_rows(nested, None)[1] == {"0": 4, "1": 5, "2": 6}
    per_feature = {
        "inputs": [
            {"name": "age", "shape": [2], "datatype": "INT32", "data": [30, 40]},
            {"name": "city", "shape": [2, 1], "datatype": "BYTES", "data": ["x", "y"]},
        ]
    }
    assert request_rows(per_feature, None) == [{"age": 30, "city": "x"}, {"age": 40, "city": "y"}]
    with pytest.raises(ValueError, match="holds 6 values, data has 5"):
        request_rows({"inputs": [{"name": "x", "shape": [2, 3], "data": [1, 2, 3, 4, 5]}]}, None)


def test_outputs_to_prediction_fields() -> None:
    assert response_rows({"predictions": [1, 0]}, None) == [
        {"prediction": "1"},
        {"prediction": "0"},
    ]
    assert response_rows({"predictions": [2.5]}, None) == [{"prediction": 2.5}]
    assert response_rows({"predictions": [[0.2, 0.8]]}, ["no", "yes"]) == [
        {"prediction": "yes", "probabilities": {"no": 0.2, "yes": 0.8}}
    ]
    v2 = {
        "outputs": [
            {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["b", "a"]},
            {"name": "proba", "shape": [2, 2], "datatype": "FP32", "data": [0.4, 0.6, 0.7, 0.3]},
        ]
    }
    rows = response_rows(v2, ["a", "b"])
    assert rows == [
        {"prediction": "b", "probabilities": {"a": 0.4, "b": 0.6}},
        {"prediction": "a", "probabilities": {"a": 0.7, "b": 0.3}},
    ]
    with pytest.raises(ValueError, match="class probabilities"):
        response_rows({"predictions": [[3.0, 4.0]]}, None)


def test_seldon_payloads() -> None:
    request = {"data": {"names": ["a", "b"], "ndarray": [[1, 2], [3, 4]]}}
    assert request_rows(request, None) == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]
    tensor = {"data": {"names": ["a", "b"], "tensor": {"shape": [2, 2], "values": [1, 2, 3, 4]}}}
    assert request_rows(tensor, None)[1] == {"a": 3, "b": 4}
    response = {"data": {"names": ["t:0", "t:1"], "ndarray": [[0.9, 0.1]]}}
    assert response_rows(response, None) == [
        {"prediction": "t:0", "probabilities": {"t:0": 0.9, "t:1": 0.1}}
    ]


def kserve_headers(kind: str, **extra: str) -> dict[str, str]:
    return {
        "ce-id": "e-1",
        "ce-type": f"org.kubeflow.serving.inference.{kind}",
        "ce-source": "http://localhost:9081/",
        "ce-specversion": "1.0",
        "ce-inferenceservicename": "iris",
        **extra,
    }


def test_join_in_either_order_with_latency_and_row_ids() -> None:
    request = binary_event(
        kserve_headers("request", **{"ce-time": "2026-11-22T10:00:00Z"}),
        b'{"instances": [[1, 2], [3, 4]]}',
    )
    response = binary_event(
        kserve_headers("response", **{"ce-time": "2026-11-22T10:00:00.250Z"}),
        b'{"predictions": [1, 0]}',
    )
    records = join(request, response, ["x", "y"], None)
    assert [r["id"] for r in records] == ["e-1/0", "e-1/1"]
    assert records[0]["features"] == {"x": 1, "y": 2}
    assert records[1]["prediction"] == "0"
    assert records[0]["latency_seconds"] == pytest.approx(0.25)
    # a response alone: records without features
    assert join(None, response, None, None)[0].keys() == {"id", "prediction"}
    assert join(request, None, None, None) == []
    with pytest.raises(PayloadError, match="2 rows, its response 1"):
        join(request, binary_event(kserve_headers("response"), b'{"predictions": [1]}'), None, None)


def test_events_need_a_known_type_an_id_and_a_name() -> None:
    with pytest.raises(PayloadError) as bad:
        binary_event({**kserve_headers("request"), "ce-type": "x.y"}, b"{}")
    assert bad.value.reason == "unknown_event_type"
    with pytest.raises(PayloadError) as bad:
        binary_event(
            {"ce-type": "org.kubeflow.serving.inference.request", "ce-inferenceservicename": "a"},
            b"{}",
        )
    assert bad.value.reason == "invalid_event"
    seldon = binary_event(
        {
            "ce-type": "io.seldon.serving.inference.response",
            "ce-id": "event-1",
            "ce-requestid": "req-1",
            "ce-modelid": "iris_1",
            "ce-inferenceservicename": "mlserver",
        },
        b"{}",
    )
    assert seldon.pair == "req-1"
    assert seldon.names == ("mlserver", "iris_1", "iris")


def test_structured_mode_with_data_or_data_base64() -> None:
    event = {
        "specversion": "1.0",
        "id": "s-1",
        "source": "x",
        "type": "org.kubeflow.serving.inference.response",
        "inferenceservicename": "iris",
        "data": {"predictions": [1]},
    }
    half = structured_event(json.dumps(event).encode())
    assert (half.pair, half.kind, half.data) == ("s-1", "response", {"predictions": [1]})
    del event["data"]
    event["data_base64"] = base64.b64encode(b'{"predictions": [2]}').decode()
    assert structured_event(json.dumps(event).encode()).data == {"predictions": [2]}


def test_half_round_trips() -> None:
    half = Half("p", "request", ("a", "b"), {"instances": [[1]]}, 12.5)
    assert Half.from_dict(json.loads(json.dumps(half.to_dict()))) == half


@pytest.mark.parametrize(
    ("address", "auth", "opted_in", "refused"),
    [
        ("127.0.0.1:9188", False, False, False),
        ("[::1]:9188", False, False, False),
        ("localhost:9188", False, False, False),
        (":9188", False, False, True),
        ("0.0.0.0:9188", False, False, True),
        ("10.0.0.5:9188", False, False, True),
        ("exporter.example:9188", False, False, True),
        (":9188", True, False, False),
        (":9188", False, True, False),
    ],
)
def test_exposure(address: str, auth: bool, opted_in: bool, refused: bool) -> None:
    problem = push_exposure_problem(address, auth_configured=auth, opted_in=opted_in)
    assert (problem is not None) == refused
    if problem is not None:
        assert "--web.push-without-auth" in problem and "--web.config.file" in problem
