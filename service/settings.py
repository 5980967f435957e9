"""Settings: one frozen object read from ``GUARDRAIL_*`` environment variables.

This is the only module that reads the environment for our own settings (the
OpenTelemetry SDK reads its standard ``OTEL_*`` variables itself). A bad value
stops start-up with a message naming the variable and the value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.errors import SettingsError

__all__ = ["Settings", "load_settings"]

ENV_PREFIX = "GUARDRAIL_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", case_sensitive=False
    )

    # -- network
    host: str = "0.0.0.0"  # address the gRPC server binds
    port: int = Field(50051, ge=0, le=65535)  # gRPC port; 0 picks a free one
    metrics_port: int = Field(9464, ge=0, le=65535)  # Prometheus /metrics; 0 picks one
    metrics_enabled: bool = True  # serve /metrics at all
    # registered guardrail names that become metric labels; the rest count as 'other'
    metrics_max_guardrails: int = Field(64, ge=1, le=1000)
    # after SIGTERM, seconds health reports NOT_SERVING before the port closes
    drain_delay_s: float = Field(0.0, ge=0, le=300)
    # server processes sharing the port; default: one per CPU
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)

    # -- gateway integrations (service/integrations)
    http_port: int = Field(0, ge=0, le=65535)  # LiteLLM Generic Guardrail API over HTTP; 0: off
    envoy_message_timeout_ms: int = Field(200, ge=1)  # Envoy ext_proc message_timeout we answer within
    envoy_failure_mode_allow: bool = False  # our own scan failure: pass unchanged (true) or 503

    # -- records
    database_url: SecretStr = SecretStr("sqlite:///guardrail.db")  # sqlite:///path or postgresql://...
    spend_log_queue_size: int = Field(10_000, ge=1)  # rows waiting to be written
    spend_log_batch_size: int = Field(500, ge=1)  # rows per insert
    spend_log_flush_interval_s: float = Field(0.2, gt=0)  # longest wait before a batch goes
    spend_log_batch_max_bytes: int = Field(4 * 1024 * 1024, ge=1024)  # text per insert
    spend_log_write_timeout_s: float = Field(5.0, gt=0)  # a slower write counts as an outage
    # outage journal directory; None: beside the SQLite file, else ./guardrail-journal
    spend_log_journal_path: Path | None = None
    spend_log_journal_max_bytes: int = Field(1024**3, ge=64 * 1024)  # past it rows drop
    # per worker slot: rows written before the answer, until stored; 0 turns it off
    spend_log_write_ahead_max_bytes: int = Field(256 * 1024**2, ge=0)
    # fsync each write-ahead row: survives a host crash too, at a cost per call
    spend_log_write_ahead_fsync: bool = False
    # rows older than this are deleted (PostgreSQL: whole daily partitions); 0 keeps all
    spend_log_retention_days: int = Field(30, ge=0)
    spend_log_store_content: bool = False  # masked payload into messages/response
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"  # auto: console on a tty
    environment: str = ""  # reported as dd.env
    tracing_enabled: bool = True  # OTEL_* configure exporter, sampler, ...

    # -- engine and limits
    stream_holdback_chars: int = Field(256, ge=16, le=65_536)  # text CheckStream holds back
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)  # gRPC receive limit
    max_text_chars: int = Field(4 * 1024 * 1024, ge=1)  # per scanned string
    offload_chars: int = Field(64 * 1024, ge=1)  # larger payloads scan in a thread
    # YAML/JSON file of guardrail definitions stored at start-up (GUARDRAIL_CONFIG;
    # GUARDRAIL_CONFIG_PATH also works)
    config_path: Path | None = Field(
        None,
        validation_alias=AliasChoices("config_path", "guardrail_config", "guardrail_config_path"),
    )
    # YAML/JSON policies: which guardrails apply per team/tenant (service/policy.py)
    policy_file: Path | None = None
    # longest a call's scans may take, in ms, within its deadline; 0: the deadline only
    scan_budget_ms: float = Field(0.0, ge=0)
    mcp_rug_pull_action: Literal["block", "flag"] = "block"  # changed/added/removed MCP tools
    max_messages: int = Field(1024, ge=1)  # messages per Check payload
    max_content_parts: int = Field(4096, ge=1)  # content parts per payload, all messages
    max_tools: int = Field(256, ge=1)  # tool definitions per payload
    # nesting of tool-call arguments / tool schemas (Python's JSON parser stops near 1000)
    max_json_depth: int = Field(64, ge=1, le=256)
    max_rules_per_guardrail: int = Field(500, ge=1)  # rules in one Register item
    max_pattern_chars: int = Field(4096, ge=1, le=4096)  # per rule pattern
    # RE2 memory per caller pattern; can only tighten the engine's own 8 MiB
    max_pattern_mem_bytes: int = Field(8 << 20, ge=64 * 1024, le=8 << 20)
    max_guardrails: int = Field(1000, ge=0)  # registered (non-built-in) per instance
    max_concurrent_streams: int = Field(100, ge=1)  # HTTP/2 streams per connection
    # per API key, per second, split evenly over the workers (0: no limit)
    rate_limit_per_s: float = Field(1000.0, ge=0)
    rate_limit_burst: float = Field(0.0, ge=0)  # bucket size; 0: one second's worth

    # -- authentication and TLS (service/auth, service/tls.py)
    api_keys_file: Path | None = None  # YAML/JSON of hashed keys; None: no authentication
    tls_cert_file: Path | None = None  # PEM server certificate chain; None: plaintext
    tls_key_file: Path | None = None  # PEM private key of tls_cert_file
    tls_client_ca_file: Path | None = None  # PEM CA bundle; set: clients must present a cert

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:///, postgresql:// or postgres://")
        return value


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        name = ENV_PREFIX + "_".join(str(p) for p in item["loc"]).upper()
        value = os.environ.get(name, item.get("input"))
        if name == f"{ENV_PREFIX}DATABASE_URL":
            value = "<redacted>"
        problems.append(f"{name}={value!r}: {item['msg']}")
    return "invalid settings: " + "; ".join(problems)


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; overrides (for tests) win over it."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
