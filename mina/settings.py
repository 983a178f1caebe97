"""Configuration from the environment, read and validated in one place.

Every knob Mina's observability has is an environment variable (see the README's table).
`Settings.from_env` parses all of them at once and raises `ConfigError` with one line
naming the variable and the offending value, so a bad deployment stops before it serves
a single request instead of half-starting.

Over 400 lines because every setting's rule is here, in one place: the instance folder
and the paths in it, and gunicorn's ``MINA_BIND``, are settings like the others.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import sysconfig
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "LOG_FORMATS",
    "LOG_WHEN_FULL",
    "SERVER_DEFAULTS",
    "ConfigError",
    "Settings",
    "bind_address",
    "check_broker_url",
    "default_instance_path",
    "default_log_format",
    "mask_dsn",
    "old_data_hint",
    "package_version",
    "settings_keeping_valid",
    "variables",
    "whole_number",
]

#: The instance folder's variable: the database and the outbox live there by default.
INSTANCE_VARIABLE = "MINA_INSTANCE_PATH"
#: Where Mina kept its data before the instance folder: ``var/`` under the working directory.
_OLD_DATA = ("var/mina.sqlite3", "var/sentry-outbox")

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
# gunicorn's address forms: a host name or IPv4 address, or an IPv6 address in brackets;
# the port is required (gunicorn would quietly pick 8000).
_BIND = re.compile(
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(?P<port>\d+)"
)


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


def _paths(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    raw = env.get(name, default)
    paths = _names({name: raw}, name)
    for path in paths:
        if not path.startswith("/") or any(char.isspace() or char in "?#" for char in path):
            raise ConfigError(name, raw, f"{path!r} is not a URL path such as /healthz")
    return paths


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


def default_instance_path(env: Mapping[str, str] | None = None) -> Path:
    """The instance folder: ``MINA_INSTANCE_PATH`` if set, else Flask's convention.

    Flask's rule (``Flask.auto_find_instance_path``), without importing Flask: a package
    installed into an environment keeps its state in ``<prefix>/var/mina-instance``, a
    source checkout (an editable install, ``make run``) in ``instance/`` next to the
    ``mina`` package. Either way it does not depend on the working directory; the Flask app
    gets the same folder as its ``instance_path``.
    """
    env = os.environ if env is None else env
    raw = (env.get(INSTANCE_VARIABLE) or "").strip()
    if raw:
        return Path(os.path.abspath(raw))
    package = Path(__file__).resolve().parent
    prefix = Path(os.path.abspath(sys.prefix))
    site = {Path(sysconfig.get_path(name)).resolve() for name in ("purelib", "platlib")}
    if package.parent in site or package.is_relative_to(prefix):
        return prefix / "var" / "mina-instance"
    return package.parent / "instance"


def _absolute(raw: str) -> Path:
    # A relative value means the directory it was typed in: fixed once, at start-up, so
    # every message names the same absolute path whatever the process does later.
    return Path(os.path.abspath(raw))


def _existing_parent(name: str, raw: str, path: Path) -> Path:
    # Mina creates directories only inside its instance folder; anywhere else a missing
    # parent is a typo or a volume not mounted, said instead of silently created.
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigError(name, raw, f"{path.parent} is not a directory")
    if not path.parent.is_dir():
        raise ConfigError(name, raw, f"the directory {path.parent} does not exist")
    return path


def _instance(env: Mapping[str, str]) -> Path:
    raw = (env.get(INSTANCE_VARIABLE) or "").strip()
    path = default_instance_path(env)
    if raw:
        _existing_parent(INSTANCE_VARIABLE, raw, path)
        if path.exists() and not path.is_dir():
            raise ConfigError(INSTANCE_VARIABLE, raw, "not a directory")
    return path


def _database(env: Mapping[str, str], instance: Path) -> Path:
    raw = (env.get("MINA_DATABASE") or "").strip()
    if not raw:
        return instance / "mina.sqlite3"
    return _existing_parent("MINA_DATABASE", raw, _absolute(raw))


#: The broker URL schemes Dramatiq's Redis broker takes.
_REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def check_broker_url(url: str | None) -> str | None:
    """Return ``MINA_BROKER_URL``'s value stripped, None when unset or empty.

    :raises ConfigError: naming ``MINA_BROKER_URL``, with the password masked, for a URL
        Dramatiq's Redis broker cannot use.
    """
    if url is None or not url.strip():
        return None
    url = url.strip()

    def invalid(reason: str) -> ConfigError:
        return ConfigError("MINA_BROKER_URL", mask_dsn(url), reason)

    parts = urlsplit(url)
    if parts.scheme not in _REDIS_SCHEMES:
        raise invalid("expected redis://host:port/db, rediss://... or unix://path, or unset")
    if parts.scheme == "unix":
        if not parts.path:
            raise invalid("unix:// needs the socket's path")
        return url
    try:
        port = parts.port
    except ValueError:
        raise invalid("the port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise invalid("no host")
    if port == 0:
        raise invalid("the port is not a number from 1 to 65535")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise invalid("the database (the path) is not a number")
    return url


def _outbox(env: Mapping[str, str], instance: Path) -> Path | None:
    raw = env.get("MINA_SENTRY_OUTBOX")
    if raw is None or not raw.strip():
        return instance / "sentry-outbox"
    if raw.strip().lower() == "off":
        return None
    path = _absolute(raw.strip())
    if path.exists() and not path.is_dir():
        raise ConfigError("MINA_SENTRY_OUTBOX", raw, "not a directory; expected a directory or off")
    return _existing_parent("MINA_SENTRY_OUTBOX", raw, path)


def old_data_hint(settings: Settings, env: Mapping[str, str] | None = None) -> str | None:
    """A one-line hint when ``var/`` in the working directory holds data of an older Mina.

    Before the instance folder, the database and the outbox defaulted to
    ``var/mina.sqlite3`` and ``var/sentry-outbox`` under the working directory. Such data is
    never moved or deleted behind the user's back; while the defaults are in use and it is
    still there, start-up and the commands that read it say where it is and how to keep
    using it. None when there is nothing to say.
    """
    env = os.environ if env is None else env
    if (env.get("MINA_DATABASE") or "").strip() or (env.get("MINA_SENTRY_OUTBOX") or "").strip():
        return None  # chosen explicitly: nothing is looked for in a default place
    found = [_absolute(old) for old in _OLD_DATA if Path(old).exists()]
    found = [path for path in found if path not in (settings.database, settings.sentry_outbox)]
    if not found:
        return None
    names = " ".join(str(path) for path in found)
    return (
        f"{names} hold(s) data of an older Mina, which now keeps its data in "
        f"{settings.instance_path}: move it there (mkdir -p {settings.instance_path} && "
        f"mv {names} {settings.instance_path}/) or keep using it "
        f"(MINA_INSTANCE_PATH={found[0].parent})"
    )


def bind_address(env: Mapping[str, str] | None = None) -> str:
    """``MINA_BIND`` (default ``127.0.0.1:5000``), validated as gunicorn would use it.

    Accepted: ``HOST:PORT`` (a name or an IPv4 address), ``[IPV6]:PORT`` and
    ``unix:/path`` (the socket's directory must exist), ``fd://N``; the port 0 (any free
    one, as the system picks) to 65535. gunicorn
    itself takes a missing port as 8000 and overflows on a port past 65535: both are
    refused here, with one line naming the variable.

    :raises ConfigError: naming ``MINA_BIND``.
    """
    env = os.environ if env is None else env
    raw = env.get("MINA_BIND")
    if raw is None:
        return SERVER_DEFAULTS["MINA_BIND"]
    value = raw.strip()
    expected = "expected HOST:PORT, [IPV6]:PORT, unix:/path or fd://N, such as 127.0.0.1:5000"
    if value.startswith("unix:"):
        socket_path = value[len("unix:") :]
        if not socket_path:
            raise ConfigError("MINA_BIND", raw, expected)
        _existing_parent("MINA_BIND", raw, _absolute(socket_path))
        return value
    if value.startswith("fd://") and _int(value[len("fd://") :]) is not None:
        return value  # a socket inherited from a supervisor (systemd), as gunicorn allows
    match = _BIND.fullmatch(value)
    if match is None:
        raise ConfigError("MINA_BIND", raw, expected)
    port = _int(match["port"])
    if port is None or not 0 <= port <= 65535:
        raise ConfigError("MINA_BIND", raw, "the port must be 0 to 65535 (0: any free port)")
    return value


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
    to tell whether a reconfiguration is needed. The paths (`database`, `sentry_outbox`)
    default to the instance folder, `default_instance_path`, which ``MINA_INSTANCE_PATH``
    moves; they are absolute.
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
    traces_ignore_paths: tuple[str, ...] = field(
        default=("/healthz",), metadata=_meta("SENTRY_TRACES_IGNORE_PATHS", "sentry")
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
    instance_path: Path = field(
        default_factory=default_instance_path, metadata=_meta(INSTANCE_VARIABLE)
    )
    database: Path = field(
        default_factory=lambda: default_instance_path() / "mina.sqlite3",
        metadata=_meta("MINA_DATABASE"),
    )
    broker_url: str | None = field(default=None, metadata=_meta("MINA_BROKER_URL"))
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
        default_factory=lambda: default_instance_path() / "sentry-outbox",
        metadata=_meta("MINA_SENTRY_OUTBOX", "sentry"),
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

    @property
    def queue_file(self) -> Path:
        """The embedded broker's SQLite file (used when ``MINA_BROKER_URL`` is unset)."""
        return self.instance_path / "jobs.sqlite3"

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
        instance = _instance(env)
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
            traces_ignore_paths=_paths(env, "SENTRY_TRACES_IGNORE_PATHS", "/healthz"),
            sentry_ignore_status_codes=_status_codes(
                env, "SENTRY_IGNORE_STATUS_CODES", "401,403,404"
            ),
            sentry_enable_logs=_flag(env, "SENTRY_ENABLE_LOGS", False),
            sentry_logs_level=_level(env, "SENTRY_LOGS_LEVEL"),
            sentry_spotlight=spotlight,
            sentry_debug=_flag(env, "SENTRY_DEBUG", False),
            log_level=_level(env),
            log_format=_choice(env, "LOG_FORMAT", default_log_format(environment), LOG_FORMATS),
            logging_config=_absolute(logging_config) if logging_config else None,
            enable_test_routes=_flag(env, "MINA_ENABLE_TEST_ROUTES", environment == "development"),
            send_pii=_flag(env, "MINA_SEND_PII", False),
            redact_keys=_names(env, "MINA_REDACT_KEYS"),
            trusted_proxies=whole_number(env, "MINA_TRUSTED_PROXIES", 0),
            instance_path=instance,
            database=_database(env, instance),
            broker_url=check_broker_url(env.get("MINA_BROKER_URL")),
            max_json_bytes=whole_number(env, "MINA_MAX_JSON_BYTES", 1024 * 1024, minimum=1024),
            log_when_full=_choice(env, "MINA_LOG_WHEN_FULL", "drop_newest", LOG_WHEN_FULL),
            log_buffer_bytes=whole_number(env, "MINA_LOG_BUFFER_BYTES", 4 * 1024 * 1024, 1024),
            log_block_timeout_ms=whole_number(env, "MINA_LOG_BLOCK_TIMEOUT_MS", 1000, 1),
            log_max_line_bytes=whole_number(env, "MINA_LOG_MAX_LINE_BYTES", 16 * 1024, 2048),
            log_fast_path=_flag(env, "MINA_LOG_FAST_PATH", True),
            log_batch=_flag(env, "MINA_LOG_BATCH", True),
            sentry_outbox=_outbox(env, instance),
            outbox_max_events=whole_number(env, "MINA_SENTRY_OUTBOX_MAX_EVENTS", 10_000, 1),
            outbox_max_bytes=whole_number(
                env, "MINA_SENTRY_OUTBOX_MAX_BYTES", 64 * 1024 * 1024, 64 * 1024
            ),
            sentry_timeout=_seconds(env, "MINA_SENTRY_TIMEOUT", 5.0),
            sentry_retry_max=_seconds(env, "MINA_SENTRY_RETRY_MAX", 60.0),
            storm_budget=whole_number(env, "MINA_SENTRY_STORM_BUDGET", 20),
            storm_window=_seconds(env, "MINA_SENTRY_STORM_WINDOW", 60.0),
        )


def settings_keeping_valid(
    env: Mapping[str, str] | None = None,
) -> tuple[Settings, list[ConfigError]]:
    """Every valid setting from *env*; each invalid variable falls back to its default.

    For the one place a bad value cannot stop start-up: a script that configures Mina on
    its first log call, which must never raise. One typo then costs that one variable,
    never the others (a valid ``SENTRY_DSN`` stays on); the errors are returned so the
    caller says each of them.
    """
    remaining = dict(os.environ if env is None else env)
    errors: list[ConfigError] = []
    while True:  # bounded: each round removes one variable, or returns
        try:
            return Settings.from_env(remaining), errors
        except ConfigError as exc:
            if exc.variable not in remaining:
                raise  # not one variable's value: nothing narrower to drop
            errors.append(exc)
            del remaining[exc.variable]


def variables() -> dict[str, str]:
    """Map each `Settings` field name to its environment variable, in field order."""
    return {item.name: item.metadata["env"] for item in fields(Settings)}
