"""--web.config.file: the exporter-toolkit format read and checked in full, and basic
auth that neither reveals users by its timing nor pays bcrypt on every scrape."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from model_health_exporter.config import ConfigError, load_settings
from model_health_exporter.exposition import web_config
from model_health_exporter.exposition.web_config import BasicAuth, WebConfig, load_web_config
from tests.tls_support import Pki, bcrypt_hash, make_pki

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def write(path: Path, doc: Any) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def test_empty_file_is_plain_http_without_auth(tmp_path: Path) -> None:
    (tmp_path / "web.yml").write_text("")
    config = load_web_config(tmp_path / "web.yml")
    assert config.tls is None
    assert not config.users
    assert config.requires_auth is False
    assert WebConfig().requires_auth is False


def test_full_file(tmp_path: Path, pki: Pki) -> None:
    doc = {
        "tls_server_config": {
            "cert_file": str(pki.server_cert),
            "key_file": str(pki.server_key),
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": str(pki.ca),
            "min_version": "TLS12",
            "max_version": "TLS13",
            "cipher_suites": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
            "prefer_server_cipher_suites": True,
            "curve_preferences": ["CurveP256"],
        },
        "http_server_config": {
            "http2": True,
            "headers": {"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff"},
        },
        "basic_auth_users": {"prometheus": bcrypt_hash("secret")},
    }
    config = load_web_config(write(tmp_path / "web.yml", doc))
    assert config.tls is not None
    assert config.tls.context.verify_mode == ssl.CERT_REQUIRED
    assert config.tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert set(config.headers) == {
        ("X-Frame-Options", "deny"),
        ("X-Content-Type-Options", "nosniff"),
    }
    assert set(config.users) == {"prometheus"}
    assert config.requires_auth is True
    assert set(config.watched_files) == {
        tmp_path / "web.yml",
        pki.server_cert,
        pki.server_key,
        pki.ca,
    }


def test_client_certificates_alone_require_auth(tmp_path: Path, pki: Pki) -> None:
    tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    plain = load_web_config(write(tmp_path / "a.yml", {"tls_server_config": tls}))
    assert plain.requires_auth is False
    verified = {
        **tls,
        "client_auth_type": "RequireAndVerifyClientCert",
        "client_ca_file": str(pki.ca),
    }
    config = load_web_config(write(tmp_path / "b.yml", {"tls_server_config": verified}))
    assert config.requires_auth is True


def test_relative_files_are_taken_from_the_files_folder(tmp_path: Path, pki: Pki) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    for source in (pki.server_cert, pki.server_key):
        (folder / source.name).write_bytes(source.read_bytes())
    doc = {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"}}
    config = load_web_config(write(folder / "web.yml", doc))
    assert config.tls is not None
    assert config.tls.files == (folder / "server.crt", folder / "server.key")


def test_inline_certificate_and_key(tmp_path: Path, pki: Pki) -> None:
    doc = {
        "tls_server_config": {
            "cert": pki.server_cert.read_text(),
            "key": pki.server_key.read_text(),
            "client_auth_type": "VerifyClientCertIfGiven",
            "client_ca": pki.ca.read_text(),
        }
    }
    config = load_web_config(write(tmp_path / "web.yml", doc))
    assert config.tls is not None
    assert config.tls.context.verify_mode == ssl.CERT_OPTIONAL


def test_every_problem_is_reported_at_once(tmp_path: Path, pki: Pki) -> None:
    doc = {
        "tls_server_config": {
            "cert_file": str(tmp_path / "missing.crt"),
            "key_file": str(pki.server_key),
            "client_auth_type": "RequireAnyClientCert",
            "min_version": "TLS14",
            "cipher_suites": ["TLS_RSA_WITH_RC4_128_SHA"],
            "curve_preferences": ["CurveP999"],
            "colour": "blue",
        },
        "http_server_config": {"headers": {"Server": "x", "X-Frame-Options": "allow"}},
        "basic_auth_users": {"alice": "plaintext", "bob": bcrypt_hash("b")},
        "rate_limit": {"interval": "1s", "burst": 1},
        "extra": 1,
    }
    with pytest.raises(ConfigError) as caught:
        load_web_config(write(tmp_path / "web.yml", doc))
    problems = "\n".join(caught.value.problems)
    for expected in (
        "tls_server_config.colour: unknown setting",
        "tls_server_config.cert_file: cannot read",
        "RequireAnyClientCert is not supported",
        "tls_server_config.min_version: 'TLS14'",
        "cipher_suites: unknown or insecure: TLS_RSA_WITH_RC4_128_SHA",
        "curve_preferences: unknown: CurveP999",
        "headers.Server: this header cannot be configured",
        "headers.X-Frame-Options: 'allow' is not one of deny, sameorigin",
        "basic_auth_users.alice: not a bcrypt hash",
        "rate_limit: not supported",
        "extra: unknown setting",
    ):
        assert expected in problems, (expected, problems)
    assert all(
        p.startswith(f"--web.config.file {tmp_path / 'web.yml'}: ") for p in caught.value.problems
    )
    assert "bob" not in problems


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        ({"cert_file": "{cert}"}, "key_file: missing"),
        ({"key_file": "{key}"}, "cert_file: missing"),
        (
            {
                "cert_file": "{cert}",
                "key_file": "{key}",
                "client_auth_type": "RequireAndVerifyClientCert",
            },
            "client_ca_file: required by RequireAndVerifyClientCert",
        ),
        (
            {"cert_file": "{cert}", "key_file": "{key}", "client_ca_file": "{ca}"},
            "client CA configured without a client_auth_type",
        ),
        ({"cert_file": "{cert}", "key_file": "{ca}"}, "certificate and key do not load"),
        (
            {
                "cert_file": "{cert}",
                "key_file": "{key}",
                "min_version": "TLS13",
                "max_version": "TLS12",
            },
            "min_version is above max_version",
        ),
    ],
)
def test_tls_problems(tmp_path: Path, pki: Pki, tls: dict[str, str], expected: str) -> None:
    paths = {"cert": pki.server_cert, "key": pki.server_key, "ca": pki.ca}
    doc = {"tls_server_config": {k: v.format(**paths) for k, v in tls.items()}}
    with pytest.raises(ConfigError) as caught:
        load_web_config(write(tmp_path / "web.yml", doc))
    assert any(expected in p for p in caught.value.problems), caught.value.problems


def test_not_yaml_or_not_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("tls_server_config: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_web_config(tmp_path / "a.yml")
    (tmp_path / "b.yml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_web_config(tmp_path / "b.yml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_web_config(tmp_path / "missing.yml")


def test_settings_check_the_file_with_the_rest(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    bad = write(tmp_path / "web.yml", {"basic_auth_users": {"a": "b"}})
    with pytest.raises(ConfigError) as caught:
        load_settings({"models": {"dirs": [str(models)]}, "web": {"config_file": str(bad)}})
    assert "basic_auth_users.a: not a bcrypt hash" in caught.value.problems[0]


def test_shipped_example_is_accepted_by_promtool_and_by_us(tmp_path: Path) -> None:
    """examples/web-config.yml with the certificates it names in tls/ beside it."""
    pki = make_pki(tmp_path / "tls")
    (tmp_path / "tls" / "client-ca.crt").write_bytes(pki.ca.read_bytes())
    example = tmp_path / "web-config.yml"
    shutil.copy(REPO / "examples" / "web-config.yml", example)
    result = subprocess.run(
        ["promtool", "check", "web-config", str(example)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = load_web_config(example)
    assert config.requires_auth
    assert config.tls is not None and config.tls.client_auth_type == "RequireAndVerifyClientCert"
    assert bcrypt.checkpw(b"change-me", config.users["prometheus"])


# ---- basic auth -------------------------------------------------------------------------


class CountingBcrypt:
    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        self._real = bcrypt.checkpw

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.hashes.append(hashed)
        return bool(self._real(password, hashed))


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> CountingBcrypt:
    counter = CountingBcrypt()
    monkeypatch.setattr(web_config.bcrypt, "checkpw", counter)
    return counter


def test_basic_auth_checks(counting: CountingBcrypt) -> None:
    auth = BasicAuth({"alice": bcrypt_hash("right", cost=5).encode()})
    assert auth.check("alice", "right")
    assert not auth.check("alice", "wrong")
    assert not auth.check("mallory", "right")
    assert not auth.check("", "")


def test_unknown_users_pay_bcrypt_at_the_same_cost(counting: CountingBcrypt) -> None:
    """What takes the time is one bcrypt check at the users' cost, for known and unknown
    users alike."""
    auth = BasicAuth({"alice": bcrypt_hash("right", cost=6).encode()})
    assert not auth.check("alice", "wrong")
    assert not auth.check("mallory", "wrong")
    assert not auth.check("mallory", "wrong")  # failures are never cached
    assert len(counting.hashes) == 3
    assert {h.split(b"$")[2] for h in counting.hashes} == {b"06"}


def test_successes_are_cached_by_credentials(counting: CountingBcrypt) -> None:
    auth = BasicAuth({"alice": bcrypt_hash("right").encode(), "bob": bcrypt_hash("b").encode()})
    for _ in range(5):
        assert auth.check("alice", "right")
    assert len(counting.hashes) == 1
    assert not auth.check("alice", "right ")  # another password: checked, and wrong
    assert not auth.check("bob", "right")
    assert len(counting.hashes) == 3


def test_cached_success_ends_with_the_users_hash(counting: CountingBcrypt) -> None:
    old = BasicAuth({"alice": bcrypt_hash("right").encode()})
    assert old.check("alice", "right")
    new = BasicAuth({"alice": bcrypt_hash("changed").encode()})
    assert not new.check("alice", "right")


def test_validate_command_checks_a_web_config(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    from model_health_exporter.cli import main  # noqa: PLC0415 - the CLI, as users run it

    good = write(
        tmp_path / "good.yml",
        {
            "tls_server_config": {
                "cert_file": str(pki.server_cert),
                "key_file": str(pki.server_key),
            },
            "basic_auth_users": {"p": bcrypt_hash("x")},
        },
    )
    assert main(["validate", "--web.config.file", str(good)]) == 0
    assert "1 file(s) valid" in capsys.readouterr().out
    bad = write(tmp_path / "bad.yml", {"basic_auth_users": {"a": "b"}, "extra": 1})
    assert main(["validate", "--web.config.file", str(bad)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2, lines
    assert all(line.startswith(f"--web.config.file {bad}: ") for line in lines)
    examples = REPO / "examples" / "models"
    assert main(["validate", str(examples), "--web.config.file", str(good)]) == 0
    assert "file(s) valid" in capsys.readouterr().out


def test_settings_read_it_once_and_say_whether_it_authenticates(tmp_path: Path) -> None:
    """What asks whether requests are authenticated (the push endpoint beyond loopback)
    gets no for no file, yes for basic auth users, from the reading load_settings checked;
    an invalid file stops load_settings, so nothing depends on it."""
    assert load_settings().web_config.requires_auth is False
    users = tmp_path / "users.yml"
    users.write_text(yaml.safe_dump({"basic_auth_users": {"a": bcrypt_hash("pw")}}))
    settings = load_settings({"web": {"config_file": str(users)}})
    assert settings.web_config.requires_auth is True
    users.write_text("")  # no longer read: the settings keep what was checked
    assert settings.web_config.requires_auth is True
    headers_only = tmp_path / "headers.yml"
    headers_only.write_text(yaml.safe_dump({"http_server_config": {"headers": {}}}))
    assert (
        load_settings({"web": {"config_file": str(headers_only)}}).web_config.requires_auth is False
    )
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"basic_auth_users": {"a": "not a bcrypt hash"}}))
    with pytest.raises(ConfigError) as raised:
        load_settings({"web": {"config_file": str(broken)}})
    assert "basic_auth_users.a: not a bcrypt hash" in raised.value.problems[0]
