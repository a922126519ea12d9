"""The Dockerfile's image, built and run as a user runs it: the example models mounted
read-only, the state on a volume. It serves, runs as uid 10001, cannot write the models,
passes its HEALTHCHECK, stops on SIGTERM within seconds with exit status 0, and a new
container on the same volume goes on counting where the last one stopped."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.support import free_port

from .podman import Exporter, Podman

pytestmark = [pytest.mark.container, pytest.mark.timeout(1200)]

ROUTING = {"model": "routing", "version": "production-v3"}  # its logs: 40 predictions, 10 feedback
PREDICTIONS = Path("routing/production-v3/predictions/predictions.jsonl")
UID = 10001  # the Dockerfile's USER


def start_exporter(podman: Podman, image: str, models: Path, state: str) -> Exporter:
    port = free_port()
    container = podman.start(
        image,
        f"--env=MHE_WEB__LISTEN_ADDRESS=127.0.0.1:{port}",
        f"--volume={models}:/models:ro",
        f"--volume={state}:/state",
    )
    exporter = Exporter(container, port)
    exporter.wait_ready()
    return exporter


def process_ids(exporter: Exporter) -> dict[str, list[int]]:
    """Uid and Gid lines of the exporter's process, as the host's kernel sees them."""
    pid = exporter.container.inspect("{{.State.Pid}}")
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines()
    fields = dict(line.split(":", 1) for line in status)
    return {name: [int(n) for n in fields[name].split()] for name in ("Uid", "Gid")}


def test_serves_as_uid_10001_without_writing_the_models_and_is_healthy(
    podman: Podman, image: str, models_copy: Path
) -> None:
    exporter = start_exporter(podman, image, models_copy, podman.volume())
    assert exporter.get("/healthz")[0] == 200
    assert exporter.get("/readyz")[0] == 200
    exporter.wait_value("routing_ml_predictions_total", ROUTING, 40.0)
    samples = exporter.samples()
    assert samples[("routing_ml_model_accuracy", frozenset(ROUTING.items()))] > 0
    assert samples[("routing_ml_feedback_total", frozenset(ROUTING.items()))] == 10.0

    assert process_ids(exporter) == {"Uid": [UID] * 4, "Gid": [UID] * 4}
    # even root in the container cannot write there: the mount itself is read-only
    probe = exporter.container.exec("touch", "/models/probe", user="0")
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr, probe
    assert not (models_copy / "probe").exists()

    # the image's own HEALTHCHECK (kept only by a docker-format build), run by podman
    healthcheck = podman("healthcheck", "run", exporter.container.id, check=False)
    assert healthcheck.returncode == 0, healthcheck
    assert exporter.container.inspect("{{.State.Health.Status}}") == "healthy"
    # and it asks the exporter: stopped (not killed), the exporter fails it
    pid = int(exporter.container.inspect("{{.State.Pid}}"))
    os.kill(pid, signal.SIGSTOP)
    try:
        stalled = podman("healthcheck", "run", exporter.container.id, check=False)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert stalled.returncode == 1 and "unhealthy" in stalled.stdout, stalled
    assert exporter.get("/healthz")[0] == 200


def test_sigterm_stops_it_in_seconds_and_a_restart_continues_the_counts(
    podman: Podman, image: str, models_copy: Path
) -> None:
    state = podman.volume()
    first = start_exporter(podman, image, models_copy, state)
    first.wait_value("routing_ml_predictions_total", ROUTING, 40.0)
    first.wait_value("routing_ml_feedback_total", ROUTING, 10.0)

    status, seconds = first.container.sigterm()
    assert status == 0, first.container.logs()
    assert seconds < 10, f"SIGTERM took {seconds:.1f} s"

    checkpoint = podman.volume_path(state) / "checkpoint.json"
    assert checkpoint.stat().st_uid == UID
    assert "routing/production-v3" in json.loads(checkpoint.read_bytes())["tallies"]

    # Retention deletes the counted log and the serving code starts a new one: only the
    # checkpoint knows the 40 predictions, and the positions keep the feedback from
    # being counted twice. Without the state volume the count would start again at 5.
    log = models_copy / PREDICTIONS
    new_lines = [line.replace('"req-', '"req-new-') for line in log.read_text().splitlines()[:5]]
    log.unlink()
    log.write_text("\n".join(new_lines) + "\n", encoding="utf-8")

    second = start_exporter(podman, image, models_copy, state)
    second.wait_value("routing_ml_predictions_total", ROUTING, 45.0)
    assert second.samples()[("routing_ml_feedback_total", frozenset(ROUTING.items()))] == 10.0
    assert "checkpoint loaded" in second.container.logs()
    status, seconds = second.container.sigterm()
    assert status == 0, second.container.logs()
    assert seconds < 10, f"SIGTERM took {seconds:.1f} s"
