"""Configuration from the environment, read and validated in one place.

Every knob Mina's observability has is an environment variable (see the README's table).
`Settings.from_env` parses all of them at once and raises `ConfigError` with one line
naming the variable and the offending value, so a bad deployment stops before it serves
a single request instead of half-starting.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "LOG_FORMATS",
    "LOG_WHEN_FULL",
    "SERVER_DEFAULTS",
    "ConfigError",
    "Settings",
    "default_log_format",
    "mask_dsn",
    "package_version",
    "variables",
    "whole_number",
]

#: Accepted values of ``LOG_FORMAT``.
LOG_FORMATS = ("json", "console")
#: Accepted values of ``MINA_LOG_WHEN_FULL``, the policy when stdout's buffer is full.
LOG_WHEN_FULL = ("drop_newest", "block")

#: gunicorn's variables (read by `mina.gunicorn_conf`) and their defaults.
SERVER_DEFAULTS: dict[str, str] = {
    "MINA_BIND": "127.0.0.1:5000",
    "MINA_WORKERS": "2",
    "MINA_THREADS": "4",
}

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class ConfigError(ValueError):
    """A configuration value is invalid; the message is one line naming the variable."""

    def __init__(self, variable: str, value: str, reason: str) -> None:
        self.variable = variable
        self.value = value
        super().__init__(f"{variable}={value!r} is invalid: {reason}")


def mask_dsn(dsn: str) -> str:
    """Return *dsn* with its key (everything before the last ``@``) replaced by ``***``."""
    if "@" not in dsn:
        return dsn
    scheme = _SCHEME.match(dsn)
    return (scheme.group() if scheme else "") + "***@" + dsn.rpartition("@")[2]


def package_version() -> str:
    """Return Mina's installed version (``0+unknown`` in a source tree never installed)."""
    try:
        return metadata.version("mina")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(name, raw, "expected 1/0, true/false, yes/no or on/off")


def _number(
    env: Mapping[str, str], name: str, default: float, valid: Callable[[float], bool], expected: str
) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, raw, f"not a number; expected {expected}") from None
    if not valid(value):  # comparisons with nan are false: nan is refused too
        raise ConfigError(name, raw, f"out of range; expected {expected}")
    return value


def _rate(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, lambda value: 0.0 <= value <= 1.0, "0.0 to 1.0")


def _names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def _status_codes(env: Mapping[str, str], name: str, default: str) -> frozenset[int]:
    raw = env.get(name, default)
    codes = set()
    for part in _names({name: raw}, name):
        code = _int(part)
        if code is None or not 100 <= code <= 599:
            raise ConfigError(name, raw, f"{part!r} is not an HTTP status code")
        codes.add(code)
    return frozenset(codes)


def _dsn(env: Mapping[str, str]) -> str | None:
    raw = (env.get("SENTRY_DSN") or "").strip()
    if not raw:
        return None
    from sentry_sdk.utils import BadDsn, Dsn

    try:
        Dsn(raw)
    except BadDsn as exc:
        raise ConfigError("SENTRY_DSN", mask_dsn(raw), str(exc) or "malformed DSN") from None
    return raw


def _level(env: Mapping[str, str], name: str = "LOG_LEVEL") -> int:
    raw = env.get(name, "INFO")
    level = logging.getLevelNamesMapping().get(raw.strip().upper())
    if level is None:
        raise ConfigError(name, raw, "expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, default)
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(name, raw, "expected one of " + ", ".join(choices))
    return value


def _int(raw: str) -> int | None:
    # str.isdigit() accepts "²" and other digits int() refuses; ask int() itself.
    try:
        return int(raw.strip())
    except ValueError:
        return None


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, lambda value: 0.0 < value < math.inf, "seconds above 0")


def _outbox(env: Mapping[str, str]) -> Path | None:
    raw = env.get("MINA_SENTRY_OUTBOX")
    if raw is None or not raw.strip():
        return Path("var/sentry-outbox")
    if raw.strip().lower() == "off":
        return None
    path = Path(raw.strip())
    if path.exists() and not path.is_dir():
        raise ConfigError("MINA_SENTRY_OUTBOX", raw, "not a directory; expected a directory or off")
    return path


def whole_number(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    """Read variable *name* as a whole number of at least *minimum*.

    :raises ConfigError: naming the variable, for anything else.
    """
    raw = env.get(name)
    if raw is None:
        return default
    value = _int(raw)
    if value is None or value < minimum:
        raise ConfigError(name, raw, f"expected a whole number, {minimum} or more")
    return value


def _meta(variable: str, *parts: str) -> dict[str, Any]:
    # Each field names its variable (the list of settings is the dataclass itself, see
    # `variables`) and the parts of Mina that read it (see `Settings.part`).
    return {"env": variable, "parts": frozenset(parts)}


def default_log_format(environment: str) -> str:
    """``LOG_FORMAT`` when unset: ``console`` in development on a terminal, else ``json``."""
    # sys.stdout is None when the process started with stdout closed (`>&-`)
    terminal = sys.stdout is not None and sys.stdout.isatty()
    return "console" if environment == "development" and terminal else "json"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of Mina's observability, parsed and validated.

    Build it with `from_env`; the dataclass is frozen so the same value can be compared
    to tell whether a reconfiguration is needed.
    """

    sentry_dsn: str | None = field(default=None, metadata=_meta("SENTRY_DSN", "sentry"))
    sentry_environment: str = field(
        default="development", metadata=_meta("SENTRY_ENVIRONMENT", "sentry")
    )
    sentry_release: str = field(
        default_factory=lambda: f"mina@{package_version()}",
        metadata=_meta("SENTRY_RELEASE", "sentry"),
    )
    traces_sample_rate: float = field(
        default=0.1, metadata=_meta("SENTRY_TRACES_SAMPLE_RATE", "sentry")
    )
    profiles_sample_rate: float = field(
        default=0.1, metadata=_meta("SENTRY_PROFILES_SAMPLE_RATE", "sentry")
    )
    sentry_ignore_status_codes: frozenset[int] = field(
        default=frozenset({401, 403, 404}), metadata=_meta("SENTRY_IGNORE_STATUS_CODES", "sentry")
    )
    sentry_enable_logs: bool = field(default=False, metadata=_meta("SENTRY_ENABLE_LOGS", "sentry"))
    sentry_logs_level: int = field(
        default=logging.INFO, metadata=_meta("SENTRY_LOGS_LEVEL", "sentry")
    )
    sentry_spotlight: str | bool = field(
        default=False, metadata=_meta("SENTRY_SPOTLIGHT", "sentry")
    )
    sentry_debug: bool = field(default=False, metadata=_meta("SENTRY_DEBUG", "sentry"))
    log_level: int = field(default=logging.INFO, metadata=_meta("LOG_LEVEL", "logging"))
    log_format: str = field(default="json", metadata=_meta("LOG_FORMAT", "logging"))
    logging_config: Path | None = field(
        default=None, metadata=_meta("MINA_LOGGING_CONFIG", "logging")
    )
    enable_test_routes: bool = field(default=True, metadata=_meta("MINA_ENABLE_TEST_ROUTES"))
    send_pii: bool = field(default=False, metadata=_meta("MINA_SEND_PII", "logging", "sentry"))
    redact_keys: tuple[str, ...] = field(default=(), metadata=_meta("MINA_REDACT_KEYS", "logging"))
    trusted_proxies: int = field(default=0, metadata=_meta("MINA_TRUSTED_PROXIES"))
    database: Path = field(default=Path("var/mina.sqlite3"), metadata=_meta("MINA_DATABASE"))
    max_json_bytes: int = field(default=1024 * 1024, metadata=_meta("MINA_MAX_JSON_BYTES"))
    log_when_full: str = field(
        default="drop_newest", metadata=_meta("MINA_LOG_WHEN_FULL", "logging")
    )
    log_buffer_bytes: int = field(
        default=4 * 1024 * 1024, metadata=_meta("MINA_LOG_BUFFER_BYTES", "logging")
    )
    log_block_timeout_ms: int = field(
        default=1000, metadata=_meta("MINA_LOG_BLOCK_TIMEOUT_MS", "logging")
    )
    log_max_line_bytes: int = field(
        default=16 * 1024, metadata=_meta("MINA_LOG_MAX_LINE_BYTES", "logging")
    )
    log_fast_path: bool = field(default=True, metadata=_meta("MINA_LOG_FAST_PATH", "logging"))
    log_batch: bool = field(default=True, metadata=_meta("MINA_LOG_BATCH", "logging"))
    sentry_outbox: Path | None = field(
        default=Path("var/sentry-outbox"), metadata=_meta("MINA_SENTRY_OUTBOX", "sentry")
    )
    outbox_max_events: int = field(
        default=10_000, metadata=_meta("MINA_SENTRY_OUTBOX_MAX_EVENTS", "sentry")
    )
    outbox_max_bytes: int = field(
        default=64 * 1024 * 1024, metadata=_meta("MINA_SENTRY_OUTBOX_MAX_BYTES", "sentry")
    )
    sentry_timeout: float = field(default=5.0, metadata=_meta("MINA_SENTRY_TIMEOUT", "sentry"))
    sentry_retry_max: float = field(default=60.0, metadata=_meta("MINA_SENTRY_RETRY_MAX", "sentry"))
    storm_budget: int = field(default=20, metadata=_meta("MINA_SENTRY_STORM_BUDGET", "sentry"))
    storm_window: float = field(default=60.0, metadata=_meta("MINA_SENTRY_STORM_WINDOW", "sentry"))

    def part(self, name: str) -> tuple[Any, ...]:
        """Return the values of the settings that part *name* (``"logging"``, ``"sentry"``)
        reads, in field order: the pipeline and Sentry are rebuilt only when theirs differ.
        """
        return tuple(
            getattr(self, item.name)
            for item in fields(self)
            if name in item.metadata.get("parts", ())
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every variable from *env* (default: `os.environ`).

        :raises ConfigError: on the first invalid value, naming the variable.
        """
        env = os.environ if env is None else env
        environment = (env.get("SENTRY_ENVIRONMENT") or "development").strip()
        logging_config = env.get("MINA_LOGGING_CONFIG", "").strip()
        if logging_config and not Path(logging_config).is_file():
            raise ConfigError("MINA_LOGGING_CONFIG", logging_config, "no such file")
        spotlight_raw = env.get("SENTRY_SPOTLIGHT", "").strip()
        spotlight: str | bool
        if spotlight_raw.startswith(("http://", "https://")):
            spotlight = spotlight_raw
        else:
            spotlight = _flag(env, "SENTRY_SPOTLIGHT", False)
        if spotlight and environment != "development":
            # The SDK posts to the sidecar synchronously, on the thread that logs.
            raise ConfigError(
                "SENTRY_SPOTLIGHT",
                spotlight_raw,
                "Spotlight sends from the request thread; only with SENTRY_ENVIRONMENT=development",
            )
        return cls(
            sentry_dsn=_dsn(env),
            sentry_environment=environment,
            sentry_release=(env.get("SENTRY_RELEASE") or "").strip() or f"mina@{package_version()}",
            traces_sample_rate=_rate(env, "SENTRY_TRACES_SAMPLE_RATE", 0.1),
            profiles_sample_rate=_rate(env, "SENTRY_PROFILES_SAMPLE_RATE", 0.1),
            sentry_ignore_status_codes=_status_codes(
                env, "SENTRY_IGNORE_STATUS_CODES", "401,403,404"
            ),
            sentry_enable_logs=_flag(env, "SENTRY_ENABLE_LOGS", False),
            sentry_logs_level=_level(env, "SENTRY_LOGS_LEVEL"),
            sentry_spotlight=spotlight,
            sentry_debug=_flag(env, "SENTRY_DEBUG", False),
            log_level=_level(env),
            log_format=_choice(env, "LOG_FORMAT", default_log_format(environment), LOG_FORMATS),
            logging_config=Path(logging_config) if logging_config else None,
            enable_test_routes=_flag(env, "MINA_ENABLE_TEST_ROUTES", environment == "development"),
            send_pii=_flag(env, "MINA_SEND_PII", False),
            redact_keys=_names(env, "MINA_REDACT_KEYS"),
            trusted_proxies=whole_number(env, "MINA_TRUSTED_PROXIES", 0),
            database=Path(env.get("MINA_DATABASE") or "var/mina.sqlite3"),
            max_json_bytes=whole_number(env, "MINA_MAX_JSON_BYTES", 1024 * 1024, minimum=1024),
            log_when_full=_choice(env, "MINA_LOG_WHEN_FULL", "drop_newest", LOG_WHEN_FULL),
            log_buffer_bytes=whole_number(env, "MINA_LOG_BUFFER_BYTES", 4 * 1024 * 1024, 1024),
            log_block_timeout_ms=whole_number(env, "MINA_LOG_BLOCK_TIMEOUT_MS", 1000, 1),
            log_max_line_bytes=whole_number(env, "MINA_LOG_MAX_LINE_BYTES", 16 * 1024, 2048),
            log_fast_path=_flag(env, "MINA_LOG_FAST_PATH", True),
            log_batch=_flag(env, "MINA_LOG_BATCH", True),
            sentry_outbox=_outbox(env),
            outbox_max_events=whole_number(env, "MINA_SENTRY_OUTBOX_MAX_EVENTS", 10_000, 1),
            outbox_max_bytes=whole_number(
                env, "MINA_SENTRY_OUTBOX_MAX_BYTES", 64 * 1024 * 1024, 64 * 1024
            ),
            sentry_timeout=_seconds(env, "MINA_SENTRY_TIMEOUT", 5.0),
            sentry_retry_max=_seconds(env, "MINA_SENTRY_RETRY_MAX", 60.0),
            storm_budget=whole_number(env, "MINA_SENTRY_STORM_BUDGET", 20),
            storm_window=_seconds(env, "MINA_SENTRY_STORM_WINDOW", 60.0),
        )


def variables() -> dict[str, str]:
    """Map each `Settings` field name to its environment variable, in field order."""
    return {item.name: item.metadata["env"] for item in fields(Settings)}
