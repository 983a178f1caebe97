"""The one pipeline: every log call, foreign record and exception goes through here.

::

    structlog call ──► merge contextvars ─► redaction ─► reserved/head-key guard
                       ─► level ─► logger ─► timestamp ─► trace ids ─► RenderToLogKwargs
                                                                   │
    logging.getLogger(...) record ─────────────────────────────────┤ (same context and
                                                                   ▼  redaction in the
                                                       stdlib LogRecord   formatter)
                                     ┌─────────────────────────────┴───────────────┐
                     stdout handler (logging.yaml)                sentry-sdk LoggingIntegration
                     python-json-logger: one JSON line            INFO+ breadcrumbs, ERROR+ events
                                                                  (redacted again in before_*)

`configure_logging` builds it once per process (calling it again with the same settings
does nothing); `get_logger` hands out module loggers that follow it. Where each part lives:

- the processors: `mina.observability.processors`; context keys and their order:
  `mina.observability.schema`; binding context: `mina.observability.context`;
- redaction: `mina.redaction` (or, without code, ``MINA_REDACT_KEYS`` and ``logging.yaml``);
- stdout handlers and levels: ``logging.yaml``; its formatters: `mina.observability.formatters`;
- Sentry options and hooks: `mina.observability.sentry`; the Flask wiring:
  `mina.observability.flask`.
"""

from __future__ import annotations

import copy
import logging
import logging.config
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Final

import structlog
import yaml
from structlog.typing import Processor

from mina.observability import fastpath, pipeline, process_hooks
from mina.observability.fastpath_config import Fast
from mina.observability.formatters import ConsoleFormatter, JsonFormatter
from mina.observability.pipeline import PIPELINE, MinaBoundLogger, context_processors, get_logger
from mina.observability.processors import (
    ForeignRecord,
    RenameReservedKeys,
    RenderToLogKwargs,
    add_timestamp,
    add_trace_ids,
)
from mina.observability.sentry import init_sentry
from mina.observability.stream import LineHandler
from mina.redaction import Redactor
from mina.settings import ConfigError, Settings

__all__ = ["build_processors", "configure_logging", "current_redactor", "get_logger"]

_MINA_FORMATTERS: Final = {
    f"{cls.__module__}.{cls.__qualname__}": name
    for cls, name in ((JsonFormatter, "json"), (ConsoleFormatter, "console"))
}
_LINE_HANDLER: Final = f"{LineHandler.__module__}.{LineHandler.__qualname__}"


def build_processors(redactor: Redactor) -> list[Processor]:
    """Return the processor chain for structlog calls, in order, ending in the renderer."""
    return [
        structlog.contextvars.merge_contextvars,
        # Before the pipeline's own keys: level, logger, timestamp and trace ids are
        # generated here, never secret, and need no scan on every call.
        redactor,
        RenameReservedKeys(),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_timestamp,
        add_trace_ids,
        RenderToLogKwargs(),
    ]


def _read_yaml(settings: Settings) -> dict[str, Any]:
    if settings.logging_config is not None:
        path: Path | Any = settings.logging_config
        name = "MINA_LOGGING_CONFIG"
    else:
        path = resources.files("mina").joinpath("logging.yaml")
        name = "logging.yaml"
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(name, str(path), f"cannot read: {exc}".replace("\n", " ")) from None
    if not isinstance(loaded, dict) or loaded.get("version") != 1:
        raise ConfigError(name, str(path), "not a dictConfig mapping with version: 1")
    return loaded


def _dictconfig(
    raw: dict[str, Any], settings: Settings, redactor: Redactor, foreign: ForeignRecord
) -> dict[str, Any]:
    # LOG_LEVEL sets the root level; LOG_FORMAT picks the formatter of every handler that
    # uses Mina's json or console formatter; Mina's formatters get the redactor and the
    # foreign-record chain built on it.
    config = copy.deepcopy(raw)
    config.setdefault("root", {})["level"] = logging.getLevelName(settings.log_level)
    formatters = config.get("formatters") or {}
    by_kind = {
        _MINA_FORMATTERS[spec.get("()", "")]: name
        for name, spec in formatters.items()
        if isinstance(spec, dict) and spec.get("()", "") in _MINA_FORMATTERS
    }
    chosen = by_kind.get(settings.log_format)
    if chosen is not None:
        for handler in (config.get("handlers") or {}).values():
            if handler.get("formatter") in by_kind.values():
                handler["formatter"] = chosen
    for kind, name in by_kind.items():
        formatters[name].update(foreign=foreign, redactor=redactor)
        if kind == "json":
            formatters[name]["max_line_bytes"] = settings.log_max_line_bytes
    for handler in (config.get("handlers") or {}).values():
        if handler.get("class") == _LINE_HANDLER:  # the MINA_LOG_* stream settings
            handler.update(
                when_full=settings.log_when_full,
                buffer_bytes=settings.log_buffer_bytes,
                block_timeout_ms=settings.log_block_timeout_ms,
                batch=settings.log_batch,
            )
    return config


def _redaction_options(own: dict[str, Any]) -> tuple[list[str], list[str]]:
    section = own.get("redaction") or {}
    keys = section.get("keys") or []
    patterns = section.get("patterns") or []
    if not all(isinstance(k, str) for k in keys) or not all(isinstance(p, str) for p in patterns):
        raise ConfigError("logging.yaml", "mina.redaction", "keys and patterns must be strings")
    return keys, patterns


def _min_level(config: dict[str, Any]) -> int:
    # structlog filters before the chain runs, so it lets through the lowest level any
    # configured logger wants; stdlib then applies each logger's own level.
    levels = [config.get("root", {}).get("level", logging.WARNING)]
    levels += [spec["level"] for spec in (config.get("loggers") or {}).values() if "level" in spec]
    numeric = [logging.getLevelName(lv) if isinstance(lv, str) else lv for lv in levels]
    return min(lv for lv in numeric if isinstance(lv, int))


def configure_logging(
    settings: Settings | None = None, *, force: bool = False, fast_path: bool | None = None
) -> Redactor:
    """Build the pipeline from *settings* (default: the environment); idempotent.

    A second call with equal settings does nothing; with different settings, or with
    *force*, the pipeline is rebuilt in place (already-cached loggers follow). The
    first use of `get_logger`'s loggers or of `mina.context` calls it with no argument
    when nothing has configured Mina yet. *fast_path* (default: the settings'
    ``MINA_LOG_FAST_PATH``, on) lets Mina's plain calls skip the generic chain with
    identical output (`mina.observability.fastpath`); off, every call takes the full chain.

    :returns: the redactor the pipeline uses, for Sentry's hooks to share.
    :raises ConfigError: for an unreadable or invalid logging configuration.
    """
    settings = Settings.from_env() if settings is None else settings
    with PIPELINE.lock:
        fast = settings.log_fast_path if fast_path is None else fast_path
        key = (settings.part("logging"), fast)
        if PIPELINE.is_current(key) and not force:
            return PIPELINE.redactor
        raw = _read_yaml(settings)
        own = raw.pop("mina", None) or {}
        keys, patterns = _redaction_options(own)
        caller_info = own.get("caller_info", False)
        if not isinstance(caller_info, bool):
            raise ConfigError("logging.yaml", "mina.caller_info", "expected true or false")
        try:
            redactor = Redactor(
                extra_keys=[*settings.redact_keys, *keys],
                extra_patterns=patterns,
                send_pii=settings.send_pii,
            )
        except ValueError as exc:  # re.error is a ValueError
            raise ConfigError("mina.redaction.patterns", str(patterns), str(exc)) from None
        foreign = ForeignRecord(context_processors(redactor))
        config = _dictconfig(raw, settings, redactor, foreign)
        try:
            logging.config.dictConfig(config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            name = "MINA_LOGGING_CONFIG" if settings.logging_config else "logging.yaml"
            raise ConfigError(name, str(settings.logging_config or "packaged"), str(exc)) from None
        pipeline.AppCallerLogger.caller_info = caller_info
        pipeline.install_level(_min_level(config), fastpath.level_method)
        # The factory skips pipeline's frames (the guarded level methods) when it looks for
        # the caller; stdlib loggers made from now on are Mina's caller-aware class.
        factory = structlog.stdlib.LoggerFactory(ignore_frame_names=[pipeline.__name__])
        logging.setLoggerClass(pipeline.AppCallerLogger)  # instead of the one the factory set
        structlog.configure(
            processors=PIPELINE.processors,
            wrapper_class=MinaBoundLogger,
            logger_factory=factory,
            cache_logger_on_first_use=True,
        )
        PIPELINE.install(key, redactor, foreign, build_processors(redactor))
        process_hooks.install()  # uncaught exceptions and warnings: one line each, too
        fastpath.configure(
            Fast.build(redactor, PIPELINE.processors) if fast and not caller_info else None
        )
        return redactor


def _configure_from_environment() -> None:
    # The first use of Mina's logging API in a process nobody configured (a script, a
    # shell): never raise into that call; a bad variable is said once and defaults apply.
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        sys.stderr.write(f"mina: configuration error: {exc}; using defaults\n")
        settings = Settings()
    init_sentry(settings, configure_logging(settings))


def current_redactor() -> Redactor:
    """Return the redactor of the configured pipeline (configuring from the env if needed)."""
    PIPELINE.ensure_configured()
    return PIPELINE.redactor


PIPELINE.set_autoconfigure(_configure_from_environment)
