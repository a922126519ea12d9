"""A real Prometheus scrapes the exporter over HTTPS, as docs/deployment.md sets it up:
a CA, a server and a client certificate made in the test, `tls_config.ca_file` and
`basic_auth` in the scrape config.

Exporter `auth` serves TLS with basic auth: scraped with the right password it is up and
its model metrics arrive; with a wrong one it is down. Exporter `mtls` requires a client
certificate signed by the CA (RequireAndVerifyClientCert): scraped with
`tls_config.cert_file`/`key_file` it is up, without a certificate it is down."""

from __future__ import annotations

import base64
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import free_port
from tests.tls_support import Pki, bcrypt_hash, make_pki

from .stack import (
    REPO_ROOT,
    ManagedProcess,
    ProcessGroup,
    find_binary,
    get_json,
    http_ok,
    write_yaml,
)

EXAMPLES = REPO_ROOT / "examples" / "models"
PASSWORD = "scrape-secret"  # noqa: S105 - a test credential


class TlsStack(ProcessGroup):
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True)
        self.pki: Pki = make_pki(workdir / "pki")
        self.addresses = {name: f"127.0.0.1:{free_port()}" for name in ("auth", "mtls")}
        super().__init__(f"http://127.0.0.1:{free_port()}")

    def _web_config(self, name: str, doc: dict[str, Any]) -> Path:
        path = self.workdir / f"web-{name}.yml"
        path.write_text(yaml.safe_dump(doc))
        return path

    def start(self) -> None:
        pki = self.pki
        tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
        configs = {
            "auth": self._web_config(
                "auth",
                {
                    "tls_server_config": tls,
                    "basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD, 10)},
                },
            ),
            "mtls": self._web_config(
                "mtls",
                {
                    "tls_server_config": {
                        **tls,
                        "client_auth_type": "RequireAndVerifyClientCert",
                        "client_ca_file": str(pki.ca),
                    }
                },
            ),
        }
        for name, config in configs.items():
            argv = [
                *(sys.executable, "-m", "model_health_exporter", "run"),
                f"--web.listen-address={self.addresses[name]}",
                f"--models.dir={EXAMPLES}",
                f"--web.config.file={config}",
                "--log.format=json",
            ]
            self.processes.append(ManagedProcess(f"exporter-{name}", argv, self.workdir))

        def job(name: str, target: str, **settings: Any) -> dict[str, Any]:
            return {
                "job_name": name,
                "scheme": "https",
                "static_configs": [{"targets": [self.addresses[target]]}],
                **settings,
            }

        ca = {"ca_file": str(pki.ca)}
        client = {**ca, "cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}
        prometheus_config = write_yaml(
            self.workdir / "prometheus.yml",
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    job(
                        "auth",
                        "auth",
                        tls_config=ca,
                        basic_auth={"username": "prometheus", "password": PASSWORD},
                    ),
                    job(
                        "wrong-password",
                        "auth",
                        tls_config=ca,
                        basic_auth={"username": "prometheus", "password": "wrong"},
                    ),
                    job("client-cert", "mtls", tls_config=client),
                    job("no-client-cert", "mtls", tls_config=ca),
                ],
            },
        )
        check = subprocess.run(
            [find_binary("promtool"), "check", "config", str(prometheus_config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        address = self.prometheus_url.removeprefix("http://")
        self.processes.append(
            ManagedProcess(
                "prometheus",
                [
                    find_binary("prometheus"),
                    f"--config.file={prometheus_config}",
                    f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                    f"--web.listen-address={address}",
                ],
                self.workdir,
            )
        )
        self.wait(lambda: self.exporter_ready("auth"), "exporter auth ready")
        self.wait(lambda: self.exporter_ready("mtls"), "exporter mtls ready")
        self.wait(lambda: http_ok(f"{self.prometheus_url}/-/ready"), "prometheus ready")

    def exporter_ready(self, name: str) -> bool:
        """/readyz over HTTPS, verified with the CA, with the right credentials."""
        pki = self.pki
        context = ssl.create_default_context(cafile=str(pki.ca))
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        request = urllib.request.Request(f"https://{self.addresses[name]}/readyz")
        if name == "auth":
            token = base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return bool(response.status == 200)

    def up(self) -> dict[str, float]:
        return {r["metric"]["job"]: float(r["value"][1]) for r in self.query("up")}


@pytest.fixture
def tls_stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TlsStack]:
    stack = TlsStack(tmp_path / "stack")
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()
        if request.session.testsfailed:
            print(stack.report())


def test_prometheus_scrapes_over_tls_with_basic_auth_and_client_certificates(
    tls_stack: TlsStack,
) -> None:
    expected = {"auth": 1.0, "wrong-password": 0.0, "client-cert": 1.0, "no-client-cert": 0.0}
    tls_stack.wait(lambda: tls_stack.up() == expected or None, f"up == {expected}")
    for job in ("auth", "client-cert"):
        accuracy = tls_stack.query(
            f'routing_ml_model_accuracy{{job="{job}",model="routing",version="production-v3"}}'
        )
        assert [float(r["value"][1]) for r in accuracy] == [0.93], (job, accuracy)

    def errors() -> dict[str, str]:
        targets = get_json(f"{tls_stack.prometheus_url}/api/v1/targets")["data"]["activeTargets"]
        return {t["labels"]["job"]: t["lastError"] for t in targets}

    # Down for the right reason (not, say, a scrape before the exporter listened).
    tls_stack.wait(lambda: "401" in errors()["wrong-password"], "a 401 for the wrong password")
    tls_stack.wait(
        lambda: "certificate required" in errors()["no-client-cert"],
        "the TLS alert for the missing client certificate",
    )
    assert tls_stack.up() == expected
