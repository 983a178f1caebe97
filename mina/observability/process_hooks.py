"""Uncaught exceptions and warnings through the pipeline, not raw onto stderr.

Python prints an uncaught exception's traceback, and a warning, straight to stderr:
no JSON, no context, no redaction (``RuntimeError: ... token=...`` in clear). `install`
routes each of them through Mina's pipeline as one redacted line instead:

- ``sys.excepthook``: ``process.uncaught_exception`` (level critical, so an error
  event in Sentry too), with ``exception_type`` and the redacted ``exception``. The
  exit status stays Python's own: 1.
- ``threading.excepthook``: ``thread.uncaught_exception`` (level error), with
  ``thread_name``; ``SystemExit`` in a thread stays silent, as in Python.
- ``warnings.showwarning``: ``python.warning`` (level warning), with ``category``,
  ``text`` and ``location``. Warning filters still decide what is shown, and a
  ``warnings.catch_warnings(record=True)`` block (``pytest.warns``) still records.

``KeyboardInterrupt`` keeps Python's own short report. A hook installed before Mina's
(anything but Python's default) is called after Mina's line, so Sentry's and test
runners' hooks keep working. `mina.logging_config.configure_logging` installs them
once; `uninstall` puts back what was there.
"""

from __future__ import annotations

import sys
import threading
import warnings
from types import TracebackType
from typing import Any, Final, TextIO

import structlog

__all__ = ["install", "installed", "uninstall"]

_log = structlog.get_logger("mina.process")
# What warnings.showwarning writes through when nothing records; a recording
# catch_warnings block replaces it with its list's append.
_DEFAULT_SHOW: Final = getattr(warnings, "_showwarnmsg_impl", None)
_previous: dict[str, Any] = {}
_active = threading.local()  # a hook already running on this thread: no second line


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    previous = _previous.get("excepthook", sys.__excepthook__)
    if issubclass(exc_type, KeyboardInterrupt) or getattr(_active, "on", False):
        previous(exc_type, exc, tb)
        return
    _active.on = True
    try:
        _log.critical(
            "process.uncaught_exception",
            exception_type=exc_type.__qualname__,
            exc_info=(exc_type, exc, tb),
        )
        if previous is not sys.__excepthook__:
            previous(exc_type, exc, tb)
    finally:
        _active.on = False


def _threading_excepthook(args: threading.ExceptHookArgs) -> None:
    previous = _previous.get("threading", threading.__excepthook__)
    if issubclass(args.exc_type, SystemExit) or getattr(_active, "on", False):
        previous(args)
        return
    _active.on = True
    try:
        _log.error(
            "thread.uncaught_exception",
            exception_type=args.exc_type.__qualname__,
            thread_name=args.thread.name if args.thread is not None else None,
            exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        )
        if previous is not threading.__excepthook__:
            previous(args)
    finally:
        _active.on = False


def _showwarning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    recording = getattr(warnings, "_showwarnmsg_impl", None) is not _DEFAULT_SHOW
    if file is not None or recording or getattr(_active, "on", False):
        # Sent somewhere on purpose (a file, a recording block): Python's own way.
        _previous.get("showwarning", warnings.showwarning)(
            message, category, filename, lineno, file, line
        )
        return
    _active.on = True
    try:
        _log.warning(
            "python.warning",
            category=category.__qualname__,
            text=str(message),
            location=f"{filename}:{lineno}",
        )
    finally:
        _active.on = False


def installed() -> bool:
    """Whether Mina's hooks are installed (by `install`, not yet undone)."""
    return bool(_previous)


def install() -> None:
    """Route uncaught exceptions and warnings through the pipeline; idempotent."""
    if _previous:
        return
    _previous.update(
        excepthook=sys.excepthook,
        threading=threading.excepthook,
        showwarning=warnings.showwarning,
    )
    sys.excepthook = _excepthook
    threading.excepthook = _threading_excepthook
    warnings.showwarning = _showwarning


def uninstall() -> None:
    """Put back the hooks `install` replaced, where nobody replaced Mina's since."""
    if not _previous:
        return
    if sys.excepthook is _excepthook:
        sys.excepthook = _previous["excepthook"]
    if threading.excepthook is _threading_excepthook:
        threading.excepthook = _previous["threading"]
    if warnings.showwarning is _showwarning:
        warnings.showwarning = _previous["showwarning"]
    _previous.clear()
