from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from model_health_exporter.cli import _run_parser, main
from model_health_exporter.config import (
    ConfigError,
    Settings,
    load_settings,
    parse_listen_address,
)
from model_health_exporter.sharding import Shard


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("MHE_"):
            monkeypatch.delenv(key)


def test_defaults() -> None:
    s = load_settings()
    assert s.web.listen_address == "127.0.0.1:9188"  # loopback, not node_exporter's 9100
    assert s.namespace == "routing_ml"
    assert s.models.layout == "auto"


def test_precedence_flags_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    config = tmp_path / "c.yml"
    config.write_text(
        f"web: {{listen_address: '127.0.0.1:1'}}\n"
        f"models: {{dirs: ['{a}'], layout: flat, default_name: from-file}}\n"
        "log: {level: debug}\n"
    )
    monkeypatch.setenv("MHE_MODELS__DIRS", f"{b}:{c}")
    monkeypatch.setenv("MHE_WEB__LISTEN_ADDRESS", "127.0.0.1:2")
    s = load_settings({"web": {"listen_address": "127.0.0.1:3"}}, config)
    assert s.web.listen_address == "127.0.0.1:3"  # flag
    assert s.models.dirs == [b, c]  # environment over file
    assert s.models.default_name == "from-file"  # file, nested keys merged
    assert s.log.level == "debug"


def test_every_problem_reported_at_once_with_its_key(tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    config.write_text("models: {layout: sideways, debounce: -1}\nbogus: 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(
            {"web": {"listen_address": "nowhere"}, "models": {"dirs": [str(tmp_path / "x")]}},
            config,
        )
    text = "\n".join(err.value.problems)
    assert len(err.value.problems) == 5, text
    for key in ("web.listen_address", "models.dirs", "models.layout", "models.debounce", "bogus"):
        assert key in text


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("web: [unclosed\n", "line 2"),
        ("- a list\n", "mapping"),
    ],
)
def test_bad_yaml_named_with_location(tmp_path: Path, content: str, expected: str) -> None:
    config = tmp_path / "c.yml"
    config.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_settings({}, config)
    assert str(config) in err.value.problems[0]
    assert expected in err.value.problems[0]


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({}, tmp_path / "absent.yml")


def test_bad_environment_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MHE_LOG__LEVEL", "chatty")
    with pytest.raises(ConfigError, match=r"log\.level"):
        load_settings()


def test_per_model_thresholds_from_yaml(tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    config.write_text(
        "baselines:\n  models:\n    fraud:\n"
        "      quality_thresholds: {f1_weighted: {warning: 0.9, critical: 0.8}}\n"
    )
    s = load_settings({}, config)
    assert s.baselines.models["fraud"].quality_thresholds["f1_score"].warning == 0.9


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        ("127.0.0.1:9188", ("127.0.0.1", 9188)),
        ("[::1]:9188", ("::1", 9188)),
        (":9188", ("", 9188)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_listen_addresses(address: str, parsed: tuple[str, int]) -> None:
    assert parse_listen_address(address) == parsed


@pytest.mark.parametrize("address", ["9188", "host:99999", "[nope]:1", "a:b"])
def test_bad_listen_addresses(address: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is checked via ConfigError
        parse_listen_address(address)


def test_help_documents_every_setting() -> None:
    text = _run_parser().format_help()
    for section in ("web", "models", "logs", "state", "log"):
        model = Settings.model_fields[section].annotation
        for name in model.model_fields:  # type: ignore[union-attr]
            renamed = {
                ("models", "dirs"): "--models.dir",  # repeatable: one item each
                ("logs", "paths"): "--logs.path",
                ("web", "config_file"): "--web.config.file",  # as Prometheus spells it
            }
            flag = renamed.get((section, name), f"--{section}.{name.replace('_', '-')}")
            assert flag in text
    for flag in ("--config.file", "--namespace", "--version"):
        assert flag in text


def test_cli_config_errors_exit_2_listing_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        ["--models.dir", str(tmp_path / "nope"), "--log.level", "loud", "--web.listen-address", "x"]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("config error") == 3


def test_cli_requires_a_models_dir(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "--models.dir" in capsys.readouterr().err


def test_run_leaves_the_signal_mask_as_it_found_it(capsys: pytest.CaptureFixture[str]) -> None:
    # a blocked SIGTERM would be inherited by every process started afterwards
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert main(["--log.level", "loud"]) == 2
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


def test_drift_and_health_settings_from_flags_and_errors_named(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "drift": {"method": "psi", "threshold": "0.25", "correction": "bonferroni"},
            "health": {"severity_bands": "0.02,0.05,0.1", "retrain_max_age_days": "7"},
        }
    )
    assert (settings.drift.method, settings.drift.threshold) == ("psi", 0.25)
    assert settings.drift.correction == "bonferroni"
    assert settings.health.severity_bands == [0.02, 0.05, 0.1]
    assert settings.health.retrain_max_age_days == 7
    with pytest.raises(ConfigError) as err:
        load_settings(
            {
                "drift": {"method": "vibes", "bins": "1"},
                "health": {"severity_bands": "0.2,0.1,0.3", "retrain_error_rate": "2"},
            }
        )
    text = "\n".join(err.value.problems)
    assert len(err.value.problems) == 4, text
    for key in ("drift.method", "drift.bins", "health.severity_bands", "health.retrain_error_rate"):
        assert key in text


def test_follow_external_symlinks_three_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().models.follow_external_symlinks is False
    config = tmp_path / "c.yml"
    config.write_text("models: {follow_external_symlinks: true}\n")
    assert load_settings(None, config).models.follow_external_symlinks is True
    args = _run_parser().parse_args(["--models.follow-external-symlinks=true"])
    assert vars(args) == {"models.follow_external_symlinks": "true"}
    assert load_settings(
        {"models": {"follow_external_symlinks": "true"}}
    ).models.follow_external_symlinks
    monkeypatch.setenv("MHE_MODELS__FOLLOW_EXTERNAL_SYMLINKS", "true")
    assert load_settings().models.follow_external_symlinks is True


def test_yaml_nested_100000_deep_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    config.write_text("models: " + "[" * 100_000)
    with pytest.raises(ConfigError) as caught:
        load_settings(None, config)
    assert caught.value.problems == [f"--config.file {config}: invalid YAML: nested too deeply"]


def test_shard_from_flag_environment_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().models.shard == Shard(0, 1)  # one instance owns every model
    config = tmp_path / "c.yml"
    config.write_text("models: {shard: 2/3}\n")
    assert load_settings(config_file=config).models.shard == Shard(2, 3)
    monkeypatch.setenv("MHE_MODELS__SHARD", "1/3")
    assert load_settings(config_file=config).models.shard == Shard(1, 3)
    assert load_settings({"models": {"shard": "0/3"}}, config).models.shard == Shard(0, 3)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2/2", "models.shard: 2/2: the shard index must be between 0 and 1"),
        ("1/0", "models.shard: 1/0: the shard count must be between 1"),
        ("1", "models.shard: '1' is not i/n"),
        ("one/two", "models.shard: 'one/two' is not i/n"),
        ("/2", "models.shard: '/2' is not i/n"),  # an unset index variable
    ],
)
def test_bad_shard_is_named(value: str, problem: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({"models": {"shard": value}})
    (reported,) = err.value.problems
    assert reported.startswith(problem)
    assert main(["--models.dir", "/", f"--models.shard={value}"]) == 2
    assert problem in capsys.readouterr().err


def test_bad_shard_in_the_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    config.write_text("models: {shard: 3}\n")  # a number, not i/n
    with pytest.raises(ConfigError) as err:
        load_settings(config_file=config)
    assert err.value.problems == [
        "models.shard: 3 is not i/n (shard index / shard count, e.g. 0/2)"
    ]
