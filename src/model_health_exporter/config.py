"""Settings: command-line flags over `MHE_` environment variables over the YAML file
given with `--config.file`. Every problem is collected and reported at once.

The same setting has three spellings, e.g. flag `--models.default-name`, environment
`MHE_MODELS__DEFAULT_NAME`, YAML `models: {default_name: ...}`.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from model_health_exporter.schema import BaselineFile
from model_health_exporter.sharding import Shard
from model_health_exporter.state.live import DEFAULT_CONFIDENCE_BUCKETS, DEFAULT_LATENCY_BUCKETS

if TYPE_CHECKING:
    from model_health_exporter.exposition.web_config import WebConfig

ENV_PREFIX = "MHE_"
DEFAULT_LISTEN_ADDRESS = "127.0.0.1:9188"
_NAMESPACE_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class ConfigError(Exception):
    """Invalid configuration; `problems` lists every one, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_listen_address(value: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (all interfaces) -> (host, port)."""
    match = re.fullmatch(r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})", value)
    if match is None:
        raise ValueError(f"{value!r} is not host:port")
    port = int(match["port"])
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    host = match["v6"] or match["host"] or ""
    if match["v6"]:
        ipaddress.IPv6Address(host)
    return host, port


def _split_numbers(value: Any) -> Any:
    # "0.1,0.5,1" from a flag or the environment; YAML gives a list.
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _split_paths(value: Any) -> Any:
    # MHE_MODELS__DIRS=/a:/b or a JSON list; flags and YAML give lists already.
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            return yaml.safe_load(value)
        return [p for p in value.split(":") if p]
    return value


def _shard(value: Any) -> Shard:
    # "1/4" from a flag, the environment or YAML.
    if isinstance(value, Shard):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not i/n (shard index / shard count, e.g. 0/2)")  # noqa: TRY004 - pydantic reports ValueError
    return Shard.parse(value)


class WebSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listen_address: str = Field(
        DEFAULT_LISTEN_ADDRESS,
        description="Address to serve /metrics, the landing page and the API on.",
    )

    enable_push: bool = Field(
        False,
        description="Serve POST /api/v1/predictions, /api/v1/feedback and /api/v1/events "
        "(KServe and Seldon payload loggers); needs --state.dir (docs/integrations.md).",
    )
    push_without_auth: bool = Field(
        False,
        description="Open the push endpoints beyond loopback without authentication "
        "(only if something in front of the exporter authenticates).",
    )

    config_file: Path | None = Field(
        None,
        description="TLS, client certificates, basic auth and headers, in the web "
        "configuration format of Prometheus' exporter-toolkit (docs/deployment.md); "
        "re-read when it or a certificate it names changes, and on SIGHUP.",
    )
    probes_without_auth: bool = Field(
        False,
        description="Answer /healthz and /readyz without basic auth, for liveness and "
        "readiness probes (not an exporter-toolkit key: this exporter's own).",
    )
    max_connections: int = Field(
        1000,
        gt=0,
        description="Open HTTP connections at most (and at most the open-files limit less "
        "64); beyond it the longest idle one is closed.",
    )
    header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send its request line and headers, and to "
        "send each part of a body.",
    )
    idle_timeout: float = Field(
        120.0,
        gt=0,
        description="Seconds an idle keep-alive connection stays open (above the scrape "
        "interval, so Prometheus reuses its connection).",
    )

    @field_validator("listen_address")
    @classmethod
    def _address(cls, value: str) -> str:
        parse_listen_address(value)
        return value


class ModelsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dirs: Annotated[list[Path], NoDecode, BeforeValidator(_split_paths)] = Field(
        default_factory=list, description="Model directory roots to watch."
    )
    layout: Literal["auto", "flat", "nested"] = Field(
        "auto", description="flat: <root>/<version>; nested: <root>/<model>/<version>."
    )
    default_name: str | None = Field(
        None, description="Model name for flat roots (default: the root folder's name)."
    )
    resync_interval: float = Field(
        60.0, gt=0, description="Seconds between full rescans, the safety net for lost events."
    )
    debounce: float = Field(
        0.02, ge=0, le=10, description="Seconds to collect file events before acting on them."
    )
    max_file_bytes: int = Field(
        4 * 1024 * 1024, gt=0, description="metrics.json files larger than this are rejected."
    )
    max_models: int = Field(1000, gt=0, description="At most this many models are exported.")
    max_columns: int = Field(
        100, gt=0, description="At most this many missing-rate columns per version."
    )
    follow_external_symlinks: bool = Field(
        False,
        description="Read files and folders that symlinks lead to outside the models "
        "directories (by default they are skipped and counted as outside_root).",
    )
    shard: Annotated[Shard, NoDecode, PlainValidator(_shard)] = Field(
        default_factory=Shard,
        description="i/n: export only the models whose name hashes to shard i of n, so n "
        "instances (each with its own --state.dir) share the models (docs/scaling.md).",
    )

    @field_validator("dirs")
    @classmethod
    def _dirs_exist(cls, value: list[Path]) -> list[Path]:
        missing = [str(p) for p in value if not p.is_dir()]
        if missing:
            raise ValueError(f"not a directory: {', '.join(missing)}")
        return [p.absolute() for p in value]


class StateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: Path | None = Field(
        None,
        description="Directory for the checkpoint of prediction-log positions and counters; "
        "without it, a restart counts the logs from the start again.",
    )


class LogsSettings(BaseModel):
    """Prediction logs: <version>/predictions/* and <version>/feedback/* (JSON Lines)."""

    model_config = ConfigDict(extra="forbid")

    paths: Annotated[list[str], NoDecode, BeforeValidator(_split_paths)] = Field(
        default_factory=list,
        description="Globs of logs outside the version folders, e.g. "
        "/var/log/serving/predictions-*.jsonl*; their records must name model and version.",
    )
    poll_interval: float = Field(
        0.5, gt=0, le=60, description="Seconds between reads of the prediction logs."
    )
    checkpoint_interval: float = Field(
        5.0, gt=0, description="Seconds between checkpoints of read positions and counters."
    )
    max_line_bytes: int = Field(
        64 * 1024, gt=0, description="Longer log lines are skipped and counted."
    )
    max_error_types: int = Field(
        20, gt=0, description="Distinct error_type labels per version; more count as 'other'."
    )
    window_bucket_seconds: float = Field(
        60.0, gt=0, description="Length of one time bucket of the live windows."
    )
    window_buckets: int = Field(
        60, gt=0, le=1440, description="Buckets per window (window = buckets x bucket length)."
    )
    window_short_buckets: int = Field(
        5,
        ge=0,
        le=1440,
        description="Buckets of the short horizon (the newest ones), which fast alerts read; "
        "0 publishes none and saves its cost (each refresh computes drift twice with it).",
    )
    window_min_samples: int = Field(
        100, gt=0, description="Window metrics are reported only from this many samples."
    )
    max_classes: int = Field(
        10, gt=0, le=100, description="Classes tracked per version; more count as 'other'."
    )
    max_pending: int = Field(
        5000, gt=0, description="Predictions per version waiting for their feedback."
    )
    pending_max_age: float = Field(
        86400.0, gt=0, description="Seconds a prediction waits for feedback before expiring."
    )
    low_confidence_threshold: float = Field(
        0.75, gt=0, lt=1, description="Confidence below this counts as low (uncertain)."
    )
    latency_buckets: Annotated[list[float], NoDecode, BeforeValidator(_split_numbers)] = Field(
        default_factory=lambda: list(DEFAULT_LATENCY_BUCKETS),
        description="Upper bounds (seconds) of the latency histogram, comma-separated.",
    )
    confidence_buckets: Annotated[list[float], NoDecode, BeforeValidator(_split_numbers)] = Field(
        default_factory=lambda: list(DEFAULT_CONFIDENCE_BUCKETS),
        description="Upper bounds of the confidence histogram, comma-separated.",
    )

    @field_validator("latency_buckets", "confidence_buckets")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if not value or any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("bucket bounds must be a non-empty, strictly increasing list")
        if not all(math.isfinite(v) for v in value):
            raise ValueError("bucket bounds must be finite (+Inf is implied)")
        return value

    @model_validator(mode="after")
    def _short_within_window(self) -> LogsSettings:
        if self.window_short_buckets > self.window_buckets:
            raise ValueError(
                f"window_short_buckets ({self.window_short_buckets}) must not exceed "
                f"window_buckets ({self.window_buckets})"
            )
        return self

    @field_validator("paths")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        problems = []
        for pattern in value:
            directory = Path(pattern).parent
            if any(c in str(directory) for c in "*?["):
                problems.append(f"{pattern}: only the file name may contain wildcards")
            elif not directory.is_dir():
                problems.append(f"{pattern}: {directory} is not a directory")
        if problems:
            raise ValueError("; ".join(problems))
        return [str(Path(p).absolute()) for p in value]


class DriftSettings(BaseModel):
    """Drift and data quality of the live windows against each version's reference."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["p_value", "psi", "js", "wasserstein", "kl"] = Field(
        "p_value",
        description="Statistic that sets routing_ml_feature_drift_detected: p_value (KS or "
        "chi-square, corrected across features), psi, js, wasserstein or kl.",
    )
    threshold: float | None = Field(
        None,
        ge=0,
        description="Flag drift when the p-value is below it (p_value) or the statistic at or "
        "above it; default per method: p_value 0.01, psi 0.2, js 0.1, wasserstein 0.1, kl 0.3.",
    )
    correction: Literal["bh", "bonferroni", "none"] = Field(
        "bh", description="Multiple-testing correction of p-values across a version's features."
    )
    reference_predictions: int = Field(
        1000,
        ge=20,
        description="Without a reference file, the first this many predictions become it.",
    )
    bins: int = Field(20, ge=2, le=200, description="Quantile bins per numeric feature.")
    top_categories: int = Field(
        20, ge=1, le=200, description="Categories tracked per categorical feature; others pool."
    )
    max_features: int = Field(
        50, gt=0, le=500, description="Features tracked per version (by name); more are dropped."
    )


class HealthSettings(BaseModel):
    """Degradation severity bands and the retraining triggers."""

    model_config = ConfigDict(extra="forbid")

    severity_bands: Annotated[list[float], NoDecode, BeforeValidator(_split_numbers)] = Field(
        default_factory=lambda: [0.05, 0.10, 0.20],
        description="Upper edges of the low, medium and high degradation bands; above the "
        "last is critical (comma-separated).",
    )
    retrain_performance_drop: float | None = Field(
        0.05, ge=0, description="Retrain when accuracy is this much (relative) below target."
    )
    retrain_drift: bool = Field(True, description="Retrain when data or prediction drift.")
    retrain_max_age_days: float | None = Field(
        30.0, ge=0, description="Retrain when the version is older than this (generated_at)."
    )
    retrain_min_new_data: int = Field(
        1000, ge=0, description="Predictions a version needs before retraining is recommended."
    )
    retrain_error_rate: float | None = Field(
        0.10, ge=0, le=1, description="Retrain when this share of predictions fails."
    )

    @field_validator("severity_bands")
    @classmethod
    def _bands(cls, value: list[float]) -> list[float]:
        if len(value) != 3 or not 0 < value[0] < value[1] < value[2]:
            raise ValueError("three increasing ratios above 0 are needed, e.g. 0.05,0.1,0.2")
        return value


class PushModelSettings(BaseModel):
    """How the payload-logger events of one served model map to a model folder."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="The model folder's name (default: the key).")
    version: str | None = Field(None, description="Default: the model's active version.")
    features: list[str] | None = Field(
        None,
        description="Names of positional inputs, in order (default: column_names of "
        "the version's metrics.json, else 0, 1, ...).",
    )
    classes: list[str] | None = Field(
        None, description="Class names of probability outputs, in order (default: 0, 1, ...)."
    )


class PushSettings(BaseModel):
    """The push endpoints (--web.enable-push) and their spool."""

    model_config = ConfigDict(extra="forbid")

    spool_dir: Path | None = Field(
        None, description="Where pushed batches are spooled (default: <state.dir>/spool)."
    )
    max_request_bytes: int = Field(
        16 * 1024 * 1024, gt=0, description="Larger request bodies (after gzip) get 413."
    )
    spool_max_bytes: int = Field(
        256 * 1024 * 1024,
        gt=0,
        description="Spooled bytes not yet read and checkpointed; beyond it pushes get 503.",
    )
    spool_file_bytes: int = Field(
        8 * 1024 * 1024, gt=0, description="A spool file is closed at this size."
    )
    join_wait: float = Field(
        60.0, gt=0, description="Seconds a payload-logger event waits for its partner."
    )
    max_waiting: int = Field(
        10000, gt=0, description="Payload-logger events waiting at once; more get 503."
    )
    max_waiting_bytes: int = Field(
        64 * 1024 * 1024,
        gt=0,
        description="Bytes of the payload-logger events waiting at once; more get 503.",
    )
    idempotency_keys: int = Field(
        100000, gt=0, description="Idempotency keys and event ids remembered (the newest)."
    )
    idempotency_horizon: float = Field(
        3600.0, gt=0, description="Seconds an idempotency key or event id is remembered."
    )
    models: dict[str, PushModelSettings] = Field(
        default_factory=dict,
        description="YAML only: per served-model name, its model folder, version, feature "
        "and class names.",
    )


class LogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: JSON unless stdout is a terminal."
    )


class BaselineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Both in the format of baseline_metrics.json.
    defaults: BaselineFile = Field(
        default_factory=BaselineFile, description="Thresholds for every model."
    )
    models: dict[str, BaselineFile] = Field(
        default_factory=dict,
        description="Per-model thresholds; these win over a model's baseline_metrics.json.",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    web: WebSettings = Field(default_factory=WebSettings)
    models: ModelsSettings = Field(default_factory=ModelsSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    logs: LogsSettings = Field(default_factory=LogsSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    baselines: BaselineSettings = Field(default_factory=BaselineSettings)
    push: PushSettings = Field(default_factory=PushSettings)
    namespace: str = Field("routing_ml", description="Prefix of every metric name.")
    _web_config: WebConfig | None = PrivateAttr(default=None)

    @property
    def web_config(self) -> WebConfig:
        """What web.config_file asks for (plain HTTP without one), read once: by
        load_settings, which checks it with the rest, else at the first use; the push
        exposure check and the server share it. Raises ConfigError."""
        if self._web_config is None:
            from model_health_exporter.exposition.web_config import (  # noqa: PLC0415 - it imports this module
                load_web_config,
            )

            self._web_config = load_web_config(self.web.config_file)
        return self._web_config

    @model_validator(mode="after")
    def _push_needs_state(self) -> Settings:
        if self.web.enable_push and self.state.dir is None:
            raise ValueError(
                "web.enable_push: pushed records are counted exactly once only with a "
                "checkpoint: give --state.dir"
            )
        return self

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _NAMESPACE_RE.match(value):
            raise ValueError(f"{value!r} is not a valid Prometheus metric name prefix")
        return value


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"--config.file {path}: cannot read: {exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else "?"
        raise ConfigError(
            [f"--config.file {path}: invalid YAML at {where}: {exc.problem}"]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"--config.file {path}: invalid YAML: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"--config.file {path}: invalid YAML: nested too deeply"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"--config.file {path}: expected a mapping at the top level"])
    return data


def _excerpt(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format_errors(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        elif err["type"] != "value_error" and isinstance(err.get("input"), str | int | float):
            msg += f" (got {_excerpt(err['input'])})"  # our own value errors quote it already
        problems.append(f"{key}: {msg}")
    return problems


def load_settings(
    overrides: Mapping[str, Any] | None = None, config_file: Path | None = None
) -> Settings:
    """Settings from flags (`overrides`, nested dicts), environment and YAML file.
    Raises ConfigError listing every problem."""
    file_values = _load_yaml(config_file) if config_file is not None else {}

    class _Sourced(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                env_settings,
                InitSettingsSource(settings_cls, init_kwargs=file_values),
            )

    try:
        sourced = _Sourced(**dict(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
    except SettingsError as exc:
        raise ConfigError([f"environment: {exc}"]) from None
    _ = sourced.web_config  # checked with the rest: a bad file stops the start (exit 2) or a reload
    return sourced
