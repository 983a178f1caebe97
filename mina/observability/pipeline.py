"""The machinery behind `mina.logging_config`: the pipeline's state and Mina's loggers.

`PIPELINE` is the one object that knows what `mina.logging_config.configure_logging`
built last: the redactor, the foreign-record chain, the processor list structlog runs,
the PII policy, and the loggers that must forget their cached methods when it changes.
Nothing else in Mina keeps pipeline state in module globals.

The bound logger (`MinaBoundLogger`) and the module logger (`MinaLogger`) live here too:
how a call reaches the chain, not what the chain does.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import sys
import threading
import traceback
import weakref
from collections.abc import Callable, Hashable
from types import FrameType
from typing import Any, Final

import structlog
from structlog.typing import Processor

from mina.observability.processors import EventProcessor, ForeignRecord, add_trace_ids
from mina.redaction import Redactor

__all__ = [
    "PIPELINE",
    "MinaBoundLogger",
    "MinaLogger",
    "Pipeline",
    "get_logger",
    "install_level",
]


class MinaBoundLogger(structlog.BoundLoggerBase):
    """The bound logger every ``structlog.get_logger()`` returns once Mina is configured.

    Its level methods are those of `structlog.make_filtering_bound_logger`, copied onto
    this one class by `install_level`: a call below the level is a bare ``return None``,
    and reconfiguring the level reaches loggers that were already cached. The enabled
    ones are guarded: a bad call (``log.info("%d", "x")``, an unknown level) or a failing
    processor or handler never raises into the application; the failure is reported on
    stderr.
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


def _as_is(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    return method


def install_level(
    level: int,
    wrap: Callable[[str, Callable[..., Any]], Callable[..., Any]] = _as_is,
) -> None:
    """Give `MinaBoundLogger` the level methods of a logger filtering below *level*.

    *wrap* gets each enabled method (already guarded) with its name and returns what the
    class keeps: `mina.logging_config` passes the fast path's
    (`mina.observability.fastpath.level_method`).
    """
    source = structlog.make_filtering_bound_logger(level)
    for name, value in vars(source).items():
        if name.startswith("__"):
            continue
        # Disabled levels are structlog's bare `_nop`/`_anop`, kept as they are: a
        # filtered call stays one empty function call.
        if callable(value) and not getattr(value, "__name__", "").startswith(("_nop", "_anop")):
            value = wrap(name, _guarded(value))
        setattr(MinaBoundLogger, name, value)


_NO_CALLER: Final = ("(unknown file)", 0, "(unknown function)", None)


class AppCallerLogger(logging.Logger):
    """The stdlib logger class for loggers created once Mina is configured.

    Without ``caller_info`` it skips the stack walk (records say "unknown", as stdlib's
    own ``logging._srcfile = None`` would make them, but only for these loggers and
    ``stack_info`` still works). With it, a structlog call's record points past
    structlog's and Mina's frames (structlog's fixed logger only skips its own), and a
    foreign call's past logging's.
    """

    #: Set by `mina.logging_config.configure_logging` from logging.yaml's
    #: ``mina.caller_info``.
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


#: Modules whose frames are the pipeline's, not the caller's.
_INTERNAL: Final = frozenset({__name__, "mina.observability.fastpath"})


def _internal(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__", "")
    return name in _INTERNAL or name.partition(".")[0] in {"logging", "structlog"}


def context_processors(redactor: Redactor) -> list[EventProcessor]:
    """The processors that give a foreign record the context and redaction of a call."""
    return [structlog.contextvars.merge_contextvars, add_trace_ids, redactor]


class Pipeline:
    """What the last configuration built, and who must hear when it changes.

    There is one, `PIPELINE`. Before any configuration it answers with defaults (a
    redactor with no extra rules and no PII), never with nothing, and without
    configuring anything: it is read from inside logging handlers.
    """

    __slots__ = (
        "_autoconfigure",
        "_defaults",
        "_foreign",
        "_key",
        "_loggers",
        "_redactor",
        "lock",
        "processors",
    )

    def __init__(self) -> None:
        #: Held while configuring, so two threads never build at once.
        self.lock = threading.RLock()
        #: The list structlog runs. One object for the life of the process: cached
        #: loggers hold a reference to it, so reconfiguration replaces its contents.
        self.processors: list[Processor] = []
        self._key: Hashable | None = None
        self._redactor: Redactor | None = None
        self._foreign: ForeignRecord | None = None
        self._defaults: tuple[ForeignRecord, Redactor] | None = None
        self._loggers: weakref.WeakSet[MinaLogger] = weakref.WeakSet()
        self._autoconfigure: Callable[[], object] | None = None

    @property
    def configured(self) -> bool:
        """Whether a configuration has been installed."""
        return self._redactor is not None

    def is_current(self, key: Hashable) -> bool:
        """Whether the installed configuration was built from settings equal to *key*."""
        return self._redactor is not None and self._key == key

    def install(
        self,
        key: Hashable,
        redactor: Redactor,
        foreign: ForeignRecord,
        processors: list[Processor],
    ) -> None:
        """Make these the pipeline's parts; every `MinaLogger` forgets its cached methods."""
        self.processors[:] = processors
        self._key, self._redactor, self._foreign = key, redactor, foreign
        for logger in list(self._loggers):
            logger.__dict__.clear()  # methods of the previous level and chain

    def parts(self) -> tuple[ForeignRecord, Redactor]:
        """Return the foreign-record chain and the redactor, or defaults before configuration."""
        if self._redactor is not None and self._foreign is not None:
            return self._foreign, self._redactor
        if self._defaults is None:
            redactor = Redactor()
            self._defaults = ForeignRecord(context_processors(redactor)), redactor
        return self._defaults

    @property
    def redactor(self) -> Redactor:
        """The configured redactor (a default one before configuration)."""
        return self.parts()[1]

    @property
    def send_pii(self) -> bool:
        """The PII policy: whether user email and client IP may reach logs and Sentry.

        It is the redactor's: one setting (``MINA_SEND_PII``) read in one place.
        """
        return self.redactor.send_pii

    def set_autoconfigure(self, configure: Callable[[], object]) -> None:
        """Set what `ensure_configured` runs when nothing has been configured yet."""
        self._autoconfigure = configure

    def ensure_configured(self) -> None:
        """Configure from the environment if nothing has yet (the first use of Mina's API).

        A script that only calls ``mina.get_logger`` or ``mina.context.bind_*`` thus gets
        redacted JSON lines and Sentry, never structlog's unredacted defaults. What runs is
        registered by `mina.logging_config` when it is imported (both public names do).
        """
        if self._redactor is not None:
            return
        with self.lock:
            if self._redactor is None and self._autoconfigure is not None:
                self._autoconfigure()

    def track(self, logger: MinaLogger) -> None:
        """Remember *logger*, so it forgets its cached methods on reconfiguration."""
        self._loggers.add(logger)


#: The pipeline of this process.
PIPELINE: Final = Pipeline()


class MinaLogger:
    """A module-level logger (`get_logger`) whose calls cost one attribute lookup.

    Like structlog's lazy proxy it can be made at import time, before configuration;
    unlike it, once Mina is configured it keeps the bound logger's methods on itself, so
    ``log.info`` is a plain instance attribute and a filtered ``log.debug`` a bare
    ``return None`` (structlog's proxy resolves itself again on every call). Its first
    use configures the pipeline from the environment if nothing has; reconfiguration
    makes every one of them forget, so a new level or chain applies.
    """

    __slots__ = ("__dict__", "__weakref__", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        PIPELINE.track(self)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # copy, pickle and friends probing: not a log method
            raise AttributeError(attr)
        PIPELINE.ensure_configured()
        value = getattr(structlog.get_logger(self._name).bind(), attr)
        if PIPELINE.configured:  # structlog's defaults are not worth keeping
            self.__dict__[attr] = value
        return value

    def __repr__(self) -> str:
        return f"<MinaLogger {self._name!r}>"


def get_logger(name: str | None = None) -> MinaLogger:
    """Return a logger for *name* (default: the calling module's ``__name__``).

    Use it like ``structlog.get_logger``, at module level::

        log = mina.get_logger(__name__)
        log.info("meeting.created", meeting_id=meeting_id)
    """
    if name is None:
        name = sys._getframe(1).f_globals.get("__name__", "root")
    return MinaLogger(name)
