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

import contextlib
import copy
import functools
import inspect
import logging
import logging.config
import sys
import threading
import traceback
import weakref
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any, Final

import structlog
import yaml
from structlog.typing import Processor

from mina.observability import context
from mina.observability.formatters import ConsoleFormatter, JsonFormatter
from mina.observability.processors import (
    EventProcessor,
    ForeignRecord,
    RenameReservedKeys,
    RenderToLogKwargs,
    add_timestamp,
    add_trace_ids,
)
from mina.redaction import Redactor
from mina.settings import ConfigError, Settings

__all__ = [
    "MinaBoundLogger",
    "MinaLogger",
    "build_processors",
    "configure_logging",
    "current_parts",
    "current_redactor",
    "get_logger",
]

_MINA_FORMATTERS: Final = {
    f"{cls.__module__}.{cls.__qualname__}": name
    for cls, name in ((JsonFormatter, "json"), (ConsoleFormatter, "console"))
}


class MinaBoundLogger(structlog.BoundLoggerBase):
    """The bound logger every ``structlog.get_logger()`` returns once Mina is configured.

    Its level methods are those of `structlog.make_filtering_bound_logger`, copied onto
    this one class: a call below the level is a bare ``return None``, and reconfiguring
    the level reaches loggers that were already cached. The enabled ones are guarded: a
    bad call (``log.info("%d", "x")``, an unknown level) or a failing processor or
    handler never raises into the application; the failure is reported on stderr.
    """


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def aguarded(self: Any, *args: Any, **kw: Any) -> Any:
            try:
                return await method(self, *args, **kw)
            except Exception as exc:  # logging must never break the caller
                _report_failure(args[0] if args else None, exc)
                return None

        return aguarded

    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kw: Any) -> Any:
        try:
            return method(self, *args, **kw)
        except Exception as exc:  # logging must never break the caller
            _report_failure(args[0] if args else None, exc)
            return None

    return guarded


def _report_failure(event: object, exc: Exception) -> None:
    with contextlib.suppress(Exception):  # stderr closed: nothing left to tell
        sys.stderr.write(
            f"mina: logging failed for event {str(event)[:200]!r}: "
            f"{type(exc).__name__}: {str(exc)[:200]}\n"
        )


_NO_CALLER: Final = ("(unknown file)", 0, "(unknown function)", None)


class _AppCallerLogger(logging.Logger):
    """The stdlib logger class for loggers created once Mina is configured.

    Without ``caller_info`` it skips the stack walk (records say "unknown", as stdlib's
    own ``logging._srcfile = None`` would make them, but only for these loggers and
    ``stack_info`` still works). With it, a structlog call's record points past
    structlog's and Mina's frames (structlog's fixed logger only skips its own), and a
    foreign call's past logging's.
    """

    #: Set by `configure_logging` from logging.yaml's ``mina.caller_info``.
    caller_info = False

    def findCaller(
        self, stack_info: bool = False, stacklevel: int = 1
    ) -> tuple[str, int, str, str | None]:
        if not (self.caller_info or stack_info):
            return _NO_CALLER  # walking the stack costs ~5 us a call, for unused fields
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and _internal(frame):
            frame = frame.f_back
        for _ in range(stacklevel - 1):  # the caller asked to point further up
            if frame is None or frame.f_back is None:
                break
            frame = frame.f_back
        if frame is None:
            return _NO_CALLER
        stack = None
        if stack_info:
            lines = traceback.format_stack(frame)
            stack = "Stack (most recent call last):\n" + "".join(lines).rstrip("\n")
        return frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name, stack


def _internal(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    return name == __name__ or name.partition(".")[0] in {"logging", "structlog"}


def _set_level(level: int) -> None:
    source = structlog.make_filtering_bound_logger(level)
    for name, value in vars(source).items():
        if name.startswith("__"):
            continue
        # Disabled levels are structlog's bare `_nop`/`_anop`, kept as they are: a
        # filtered call stays one empty function call.
        if callable(value) and not getattr(value, "__name__", "").startswith(("_nop", "_anop")):
            value = _guarded(value)
        setattr(MinaBoundLogger, name, value)


class _Pipeline:
    """What one configuration built: kept so a second identical call is a no-op."""

    __slots__ = ("foreign", "key", "redactor")

    def __init__(self, key: tuple[Any, ...], redactor: Redactor, foreign: ForeignRecord):
        self.key = key
        self.redactor = redactor
        self.foreign = foreign


def _settings_key(settings: Settings) -> tuple[Any, ...]:
    # The settings the pipeline reads: others changing is no reason to rebuild it.
    return (
        settings.log_level,
        settings.log_format,
        settings.logging_config,
        settings.send_pii,
        settings.redact_keys,
    )


_lock = threading.Lock()
_current: _Pipeline | None = None
# One list object for the life of the process: cached loggers hold a reference to it,
# so reconfiguration replaces its contents instead of the list.
_processors: list[Processor] = []


def _context_processors(redactor: Redactor) -> list[EventProcessor]:
    # Shared by structlog calls and foreign records.
    return [structlog.contextvars.merge_contextvars, add_trace_ids, redactor]


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
    for name in by_kind.values():
        formatters[name].update(foreign=foreign, redactor=redactor)
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


def configure_logging(settings: Settings | None = None, *, force: bool = False) -> Redactor:
    """Build the pipeline from *settings* (default: the environment); idempotent.

    A second call with equal settings does nothing; with different settings, or with
    *force*, the pipeline is rebuilt in place (already-cached loggers follow).

    :returns: the redactor the pipeline uses, for Sentry's hooks to share.
    :raises ConfigError: for an unreadable or invalid logging configuration.
    """
    global _current
    settings = Settings.from_env() if settings is None else settings
    with _lock:
        key = _settings_key(settings)
        if _current is not None and _current.key == key and not force:
            return _current.redactor
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
        foreign = ForeignRecord(_context_processors(redactor))
        config = _dictconfig(raw, settings, redactor, foreign)
        try:
            logging.config.dictConfig(config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            name = "MINA_LOGGING_CONFIG" if settings.logging_config else "logging.yaml"
            raise ConfigError(name, str(settings.logging_config or "packaged"), str(exc)) from None
        context.set_pii_policy(settings.send_pii)
        _AppCallerLogger.caller_info = caller_info
        _processors[:] = build_processors(redactor)
        _set_level(_min_level(config))
        factory = structlog.stdlib.LoggerFactory(ignore_frame_names=[__name__])
        logging.setLoggerClass(_AppCallerLogger)  # instead of the one the factory just set
        structlog.configure(
            processors=_processors,
            wrapper_class=MinaBoundLogger,
            logger_factory=factory,
            cache_logger_on_first_use=True,
        )
        _current = _Pipeline(key, redactor, foreign)
        for logger in list(_loggers):
            logger.__dict__.clear()  # methods of the previous level and chain
        return redactor


_defaults: tuple[ForeignRecord, Redactor] | None = None


def current_parts() -> tuple[ForeignRecord, Redactor]:
    """Return the configured pipeline's foreign-record chain and redactor.

    Before any configuration: default ones (no extra keys, no PII), never nothing, and
    without configuring anything, since this runs inside logging handlers.
    """
    global _defaults
    if _current is not None:
        return _current.foreign, _current.redactor
    if _defaults is None:
        redactor = Redactor()
        _defaults = ForeignRecord(_context_processors(redactor)), redactor
    return _defaults


class MinaLogger:
    """A module-level logger (`get_logger`) whose calls cost one attribute lookup.

    Like structlog's lazy proxy it can be made at import time, before configuration;
    unlike it, once Mina is configured it keeps the bound logger's methods on itself, so
    ``log.info`` is a plain instance attribute and a filtered ``log.debug`` a bare
    ``return None`` (structlog's proxy resolves itself again on every call).
    `configure_logging` makes every one of them forget, so a new level or chain applies.
    """

    __slots__ = ("__dict__", "__weakref__", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        _loggers.add(self)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # copy, pickle and friends probing: not a log method
            raise AttributeError(attr)
        value = getattr(structlog.get_logger(self._name).bind(), attr)
        if _current is not None:  # before configuration, structlog's defaults: not kept
            self.__dict__[attr] = value
        return value

    def __repr__(self) -> str:
        return f"<MinaLogger {self._name!r}>"


_loggers: weakref.WeakSet[MinaLogger] = weakref.WeakSet()


def get_logger(name: str | None = None) -> MinaLogger:
    """Return a logger for *name* (default: the calling module's ``__name__``).

    Use it like ``structlog.get_logger``, at module level::

        log = mina.logging_config.get_logger(__name__)
        log.info("meeting.created", meeting_id=meeting_id)
    """
    if name is None:
        name = sys._getframe(1).f_globals.get("__name__", "root")
    return MinaLogger(name)


def current_redactor() -> Redactor:
    """Return the redactor of the configured pipeline (configuring from the env if needed)."""
    return _current.redactor if _current is not None else configure_logging()
