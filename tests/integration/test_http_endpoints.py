"""The HTTP surface besides /metrics: landing page, health and readiness, the JSON API,
errors for unknown paths and methods, and binding only the requested address."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import socket
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.browser import Element, parse_html
from tests.support import RunningDaemon, good_metrics, parse_samples, wait_until, write_json

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "models"


def copy_examples(dest: Path) -> Path:
    models = dest / "models"
    shutil.copytree(EXAMPLES, models, symlinks=True)
    return models


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    workdir = tmp_path_factory.mktemp("http")
    running = RunningDaemon(workdir, [f"--models.dir={copy_examples(workdir)}"])
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def raw_request(port: int, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send `request` as is; read to the end (the server answers HTTP/1.0 and closes).
    Unlike urllib, this shows whether a response to HEAD carries a body."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("iso-8859-1").split("\r\n")
    headers = {}
    for line in lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return status, headers, body


# ---- landing page ---------------------------------------------------------------------


BOARD_HEADERS = [
    "Version",
    "Status",
    "Why",
    "Health",
    "Drifted features",
    "Evaluation accuracy",
    "Live accuracy",
    "Estimated accuracy",
    "Predictions",
    "Last data",
]


def board_rows(body: bytes) -> dict[str, list[dict[str, str]]]:
    """The status board's rows per model panel: column header -> cell text, plus the
    row's data-status and class."""
    dom = parse_html(body.decode())
    out: dict[str, list[dict[str, str]]] = {}
    for section in dom.find_all("section", class_="model"):
        table = section.find("table")
        headers = [th.text() for th in table.find("thead").find_all("th")]
        assert headers == BOARD_HEADERS
        rows = out.setdefault(section.attrs["data-model"], [])
        for tr in table.find("tbody").find_all("tr"):
            cells = [c.text() for c in tr.children if isinstance(c, Element)]
            rows.append(
                {
                    **dict(zip(headers, cells, strict=True)),
                    "data-status": tr.attrs["data-status"],
                    "class": tr.attrs["class"],
                }
            )
    return out


def test_landing_page_lists_every_version(daemon: RunningDaemon) -> None:
    def logs_read() -> tuple[bytes, dict[str, list[dict[str, str]]], Any] | None:
        status, body, headers = daemon.get("/")
        assert status == 200
        rows = board_rows(body)
        return (body, rows, headers) if rows["routing"][0]["Predictions"] == "40" else None

    body, rows, headers = wait_until(logs_read, 10.0, "the example prediction log read")
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    # the active version first, each with its evaluation accuracy
    assert {m: [(r["Version"], r["Evaluation accuracy"]) for r in v] for m, v in rows.items()} == {
        "fraud": [("2026-11-01 (active)", "0.958"), ("2026-10-01", "0.962")],
        "routing": [
            ("production-v3 (active)", "0.930"),
            ("production-v1", "0.920"),
            ("production-v2", "0.780 critical"),  # marked, in words
        ],
    }
    assert [r["class"] for r in rows["routing"]] == ["active", "inactive", "inactive"]
    # Only routing/production-v3 has prediction logs (40 lines, below the window minimum);
    # the active versions have a health score from their evaluation accuracy.
    assert [r["Predictions"] for v in rows.values() for r in v] == ["\u2013"] * 2 + [
        "40",
        "\u2013",
        "\u2013",
    ]
    for versions in rows.values():
        for row in versions:
            healthy = re.fullmatch(r"\d+ (excellent|good|fair|poor)", row["Health"]) is not None
            assert healthy == row["Version"].endswith("(active)")
    # production-v2 is below its critical thresholds (0.78 < 0.80): flagged, in words
    v2 = rows["routing"][2]
    assert v2["data-status"] == v2["Status"] == "critical"
    assert "evaluation accuracy 0.78 below critical 0.8" in v2["Why"]
    assert rows["routing"][0]["data-status"] == "ok"
    links = {a.attrs.get("href") for a in parse_html(body.decode()).find_all("a")}
    assert {"/metrics", "/api/v1/models", "/models/routing", "/models/fraud"} <= links

    # the model page holds what metrics.json says of each version
    status, page, _ = daemon.get("/models/routing")
    assert status == 200
    versions = parse_html(page.decode()).find("table", class_="versions")
    got = [
        [c.text() for c in tr.children if isinstance(c, Element)][:4]
        for tr in versions.find("tbody").find_all("tr")
    ]
    assert got == [
        ["production-v3 (active)", "ok", "2026-11-01 12:00 UTC", "2100"],
        ["production-v1", "ok", "2026-09-01 12:00 UTC", "1500"],
        ["production-v2", "critical", "2026-10-01 12:00 UTC", "900"],
    ]


def test_landing_page_escapes_names_and_problems(start_daemon: Any, tmp_path: Path) -> None:
    """Folder names and validation messages come from users' files: never raw HTML."""
    models = tmp_path / "models"
    write_json(models / "a<b>&c" / "v<i>1" / "metrics.json", {"accuracy": 0.9})
    (models / "a<b>&c" / "v2").mkdir()
    (models / "a<b>&c" / "v2" / "metrics.json").write_text('{"accuracy": "<script>x</script>"}')
    daemon = start_daemon(f"--models.dir={models}")
    status, body, _ = daemon.get("/")
    assert status == 200
    status, page, _ = daemon.get("/models/a%3Cb%3E%26c")
    assert status == 200
    for html in (body.decode(), page.decode()):
        assert html.count("<script>") == 1  # the page's own refresh script
        assert "<b>" not in html
        assert "<i>" not in html
    rows = board_rows(body)["a<b>&c"]
    assert sorted(r["Version"].removesuffix(" (active)") for r in rows) == ["v2", "v<i>1"]
    invalid = next(r for r in rows if r["Version"].startswith("v2"))
    assert "metrics.json invalid: invalid_type" in invalid["Why"]
    assert "<script>x</script>" in invalid["Why"]  # shown as text
    assert 'href="/models/a%3Cb%3E%26c"' in body.decode()


def test_landing_page_without_models(start_daemon: Any, tmp_path: Path) -> None:
    models = tmp_path / "empty"
    models.mkdir()
    daemon = start_daemon(f"--models.dir={models}")
    status, body, _ = daemon.get("/")
    assert status == 200
    assert board_rows(body) == {}
    assert "No model versions found yet." in parse_html(body.decode()).find("main").text()


def test_board_refresh_is_304_until_the_data_changes(start_daemon: Any, tmp_path: Path) -> None:
    """The board's refresh script asks with the ETag of the part it holds; an unchanged
    board costs a 304 without a body, whatever the time, a changed one a 200."""
    models = tmp_path / "models"
    write_json(models / "m" / "v1" / "metrics.json", {"accuracy": 0.9})
    # no full rescan during the test: its time is on the board, and would change it
    daemon = start_daemon(f"--models.dir={models}", "--models.resync-interval=3600")
    status, page, _ = daemon.get("/")
    assert status == 200
    embedded = parse_html(page.decode()).find("main", id="live").attrs["data-etag"]
    status, body, headers = daemon.get("/?part=live")
    assert status == 200 and b'data-model="m"' in body
    etag = headers["ETag"]
    assert etag == embedded  # the page's first refresh can already be a 304
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    assert headers["Cache-Control"] == "no-cache"

    wait_until(lambda: b"just now" not in daemon.get("/?part=live")[1], 10, "5 s to pass")
    for asked in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        status, body, headers = daemon.get("/?part=live", {"If-None-Match": asked})
        assert (status, body) == (304, b""), asked
        assert headers["ETag"] == etag
    status, headers, body = raw_request(
        daemon.port,
        f"GET /?part=live HTTP/1.0\r\nIf-None-Match: {etag}\r\n\r\n".encode(),
    )
    assert status.split(" ", 2)[1] == "304" and body == b"", status  # none on the wire
    assert daemon.get("/?part=live", {"If-None-Match": '"other"'})[0] == 200

    write_json(models / "m" / "v2" / "metrics.json", {"accuracy": 0.8})
    wait_until(lambda: b'data-version="v2"' in daemon.get("/?part=live")[1], 10, "v2 on the board")
    status, body, headers = daemon.get("/?part=live", {"If-None-Match": etag})
    assert status == 200 and b'data-version="v2"' in body
    assert headers["ETag"] != etag


def test_pages_and_the_api_are_gzipped_for_clients_that_accept_it(daemon: RunningDaemon) -> None:
    """Browsers send Accept-Encoding: gzip; the board at 1,000 models is megabytes of
    HTML. A client that does not ask gets the plain body; small bodies stay plain."""
    gz = {"Accept-Encoding": "gzip, deflate"}
    for path in ("/", "/?part=live", "/api/v1/models", "/models/routing"):
        status, plain, plain_headers = daemon.get(path)
        assert status == 200 and plain_headers["Content-Encoding"] is None, path
        status, packed, headers = daemon.get(path, gz)
        assert status == 200, path
        assert (headers["Content-Encoding"], headers["Vary"]) == ("gzip", "Accept-Encoding")
        assert int(headers["Content-Length"]) == len(packed) < len(plain) / 2, path
        unpacked = gzip.decompress(packed)
        if path == "/api/v1/models":
            assert json.loads(unpacked)["models"] == json.loads(plain)["models"]
        elif path == "/":
            assert board_rows(unpacked) == board_rows(plain)
        else:
            assert unpacked.startswith(plain[:200]), path
    status, body, headers = daemon.get("/healthz", gz)
    assert (status, body, headers["Content-Encoding"]) == (200, b"ok\n", None)
    status, headers, body = raw_request(
        daemon.port, b"HEAD /api/v1/models HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n"
    )
    assert headers["content-encoding"] == "gzip" and int(headers["content-length"]) > 0
    assert body == b""


def test_a_compressed_refresh_has_a_weak_etag_that_matches_either_way(
    start_daemon: Any, tmp_path: Path
) -> None:
    """The same live part, compressed or not, is the same content: its ETag is weak when
    compressed, and either form sent back (or the page's own) gets a 304."""
    models = tmp_path / "models"
    for n in range(20):  # a live part well over the size compression starts at
        write_json(models / f"m{n}" / "v1" / "metrics.json", {"accuracy": 0.9})
    daemon = start_daemon(f"--models.dir={models}", "--models.resync-interval=3600")
    wait_until(lambda: b'data-model="m19"' in daemon.get("/?part=live")[1], 10, "20 models")
    gz = {"Accept-Encoding": "gzip"}
    strong = daemon.get("/?part=live")[2]["ETag"]
    status, _, headers = daemon.get("/?part=live", gz)
    assert status == 200 and headers["ETag"] == f"W/{strong}"
    for asked in (strong, f"W/{strong}"):
        status, body, headers = daemon.get("/?part=live", {**gz, "If-None-Match": asked})
        assert (status, body, headers["ETag"]) == (304, b"", f"W/{strong}"), asked
        status, body, headers = daemon.get("/?part=live", {"If-None-Match": asked})
        assert (status, body, headers["ETag"]) == (304, b"", strong), asked


def test_last_data_survives_a_restart(tmp_path: Path) -> None:
    """When a version's last record was read is in the checkpoint: after a restart the
    board shows that moment (before, only the end of the newest bucket holding data)."""
    models = copy_examples(tmp_path)

    def last_data(daemon: RunningDaemon) -> str | None:
        dom = parse_html(daemon.get("/")[1].decode())
        row = dom.find("section", data_model="routing").find("tr", data_version="production-v3")
        cells = [c for c in row.children if isinstance(c, Element)]
        if cells[BOARD_HEADERS.index("Predictions")].text() != "40":
            return None
        return cells[BOARD_HEADERS.index("Last data")].find("time").attrs["datetime"]

    args = [f"--models.dir={models}", f"--state.dir={tmp_path / 'state'}"]
    first = RunningDaemon(tmp_path, args)
    try:
        first.wait_ready()
        before = wait_until(lambda: last_data(first), 10, "the example log read")
    finally:
        assert first.stop() == 0  # the last checkpoint is written on the way out
    second = RunningDaemon(tmp_path, args)
    try:
        second.wait_ready()
        assert wait_until(lambda: last_data(second), 10, "the checkpoint loaded") == before
    finally:
        second.stop()


def test_model_page_of_an_unknown_model_is_404(daemon: RunningDaemon) -> None:
    status, body, headers = daemon.get("/models/nope%3Cscript%3E")
    assert status == 404
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"No model named &ldquo;nope&lt;script&gt;&rdquo;" in body


# ---- health and readiness -------------------------------------------------------------


def test_healthz(daemon: RunningDaemon) -> None:
    status, body, headers = daemon.get("/healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["Content-Type"].startswith("text/plain")


def test_readyz_after_initial_scan(daemon: RunningDaemon) -> None:
    status, body, _ = daemon.get("/readyz")
    assert (status, body) == (200, b"ready\n")


# ---- JSON API -------------------------------------------------------------------------


def test_api_models(daemon: RunningDaemon) -> None:
    status, body, headers = daemon.get("/api/v1/models")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    data = json.loads(body)
    assert data["ready"] is True
    assert isinstance(data["last_scan"], float)
    models = {m["name"]: m for m in data["models"]}
    assert list(models) == ["fraud", "routing"]

    routing, fraud = models["routing"], models["fraud"]
    assert (routing["active_version"], routing["active_source"]) == ("production-v3", "ACTIVE")
    assert (fraud["active_version"], fraud["active_source"]) == ("2026-11-01", "current")
    assert routing["layout"] == fraud["layout"] == "nested"
    assert [v["version"] for v in routing["versions"]] == [
        "production-v1",
        "production-v2",
        "production-v3",
    ]
    assert [v["version"] for v in fraud["versions"]] == ["2026-10-01", "2026-11-01"]

    for model in (routing, fraud):
        for version in model["versions"]:
            assert version["active"] is (version["version"] == model["active_version"])
            assert version["valid"] is True
            assert version["problem"] is None
            on_disk = json.loads(
                (EXAMPLES / model["name"] / version["version"] / "metrics.json").read_text()
            )
            served = version["metrics"]
            assert set(served) == set(on_disk)
            for key, value in on_disk.items():
                if key == "generated_at":
                    assert datetime.fromisoformat(served[key]) == datetime.fromisoformat(value)
                else:
                    assert served[key] == value, (model["name"], version["version"], key)

    v2 = next(v for v in routing["versions"] if v["version"] == "production-v2")
    assert v2["degradation"]["accuracy"] == pytest.approx((0.92 - 0.78) / 0.92, rel=1e-12)

    baseline_file = json.loads((EXAMPLES / "routing" / "baseline_metrics.json").read_text())
    thresholds = routing["baseline"]["quality_thresholds"]
    assert thresholds["accuracy"] == baseline_file["quality_thresholds"]["accuracy"]
    assert thresholds["f1_score"] == baseline_file["quality_thresholds"]["f1_weighted"]
    assert routing["baseline"]["expected_dataset"] == baseline_file["expected_dataset"]
    assert fraud["baseline"]["quality_thresholds"]["accuracy"] == {
        "target": 0.92,
        "warning": 0.85,
        "critical": 0.80,
    }
    assert routing["baseline_problem"] is None


# ---- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/metrics/", "/api/v1/models/routing", "/index.html"])
def test_unknown_path_is_404(daemon: RunningDaemon, path: str) -> None:
    status, _, _ = daemon.get(path)
    assert status == 404


@pytest.mark.parametrize("path", ["/", "/healthz", "/readyz", "/api/v1/models"])
def test_post_is_405_with_allow(daemon: RunningDaemon, path: str) -> None:
    status, headers, _ = raw_request(
        daemon.port, f"POST {path} HTTP/1.0\r\nContent-Length: 0\r\n\r\n".encode()
    )
    assert status.split(" ", 2)[1] == "405", status
    # RFC 9110 15.5.6: a 405 response MUST carry Allow.
    allowed = {m.strip() for m in headers.get("allow", "").split(",")}
    assert {"GET", "HEAD"} <= allowed, headers


@pytest.mark.parametrize("path", ["/", "/healthz", "/api/v1/models"])
def test_head_has_headers_but_no_body(daemon: RunningDaemon, path: str) -> None:
    status, headers, body = raw_request(daemon.port, f"HEAD {path} HTTP/1.0\r\n\r\n".encode())
    assert status.split(" ", 2)[1] == "200", status
    assert int(headers["content-length"]) > 0  # the length GET would send
    assert body == b""  # RFC 9110 9.3.2: no content in a response to HEAD


# ---- listening address ----------------------------------------------------------------


def _listeners(port: int) -> set[str]:
    """Local addresses of LISTEN sockets on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:
                if len(address) == 8:  # IPv4, little-endian
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    words = [bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, 32, 8)]
                    found.add(socket.inet_ntop(socket.AF_INET6, b"".join(words)))
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/net and 127.0.0.0/8")
def test_binds_only_the_requested_loopback_address(daemon: RunningDaemon) -> None:
    assert daemon.get("/healthz")[0] == 200
    assert _listeners(daemon.port) == {"127.0.0.1"}
    # The rest of 127.0.0.0/8 is loopback too, but reaches only a wildcard listener.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", daemon.port), timeout=5).close()


def test_ready_only_once_the_checkpoints_counts_are_restored(tmp_path: Path) -> None:
    """/readyz said 200 after the scan but before the checkpoint was loaded, so a scrape
    just after a restart could miss every restored counter."""
    models = tmp_path / "models"
    versions = [(f"m{i}", "v1") for i in range(120)]
    for model, version in versions:
        write_json(models / model / version / "metrics.json", good_metrics(version))
        lines = b"".join(
            b'{"id": "%s-%d", "prediction": "a", "latency_ms": 3}\n' % (model.encode(), j)
            for j in range(5)
        )
        log = models / model / version / "predictions" / "p.jsonl"
        log.parent.mkdir(parents=True)
        log.write_bytes(lines)
    args = [f"--models.dir={models}", f"--state.dir={tmp_path / 'state'}"]

    def total(daemon: RunningDaemon) -> float:
        samples = parse_samples(
            daemon.get("/metrics?name[]=routing_ml_predictions_total")[1].decode()
        )
        return sum(v for (name, _), v in samples.items() if name == "routing_ml_predictions_total")

    first = RunningDaemon(tmp_path, args)
    try:
        first.wait_ready()
        wait_until(lambda: total(first) == 5 * len(versions), 30, "every log read")
    finally:
        assert first.stop() == 0  # the last checkpoint is written on the way out
    second = RunningDaemon(tmp_path, args)
    try:
        second.wait_ready(timeout=30)  # polls /readyz, then at once:
        assert total(second) == 5 * len(versions)
    finally:
        second.stop()
