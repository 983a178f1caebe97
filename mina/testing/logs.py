"""
Capture the lines Mina's pipeline writes, after the whole chain.

structlog's own ``structlog.testing.capture_logs`` replaces the processors, so it shows
what a call *asked* to log, before redaction, renaming and the formatter. The lines here
are what Mina actually writes: every processor ran, foreign records were merged, values
JSON cannot encode were made safe, secrets were redacted::

    with capture_pipeline(log_level=logging.DEBUG) as logs:
        structlog.get_logger().info("user.login", password="hunter2")
    assert "[REDACTED]" == logs.events("user.login")[0]["password"]

Nothing here depends on pytest; `mina.testing.plugin` builds its fixtures on it.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mina.settings import Settings

__all__ = ["CapturedLogs", "capture_pipeline"]


class CapturedLogs:
    """The lines Mina's pipeline wrote to stdout while capturing: text and parsed."""

    __slots__ = ("_stream",)

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    @property
    def text(self) -> str:
        """Everything written so far, exactly as it would have reached stdout."""
        return self._stream.getvalue()

    def all(self) -> list[dict[str, Any]]:
        """Every line, parsed.

        Raises:
            AssertionError: A line is not one JSON object (the pipeline's promise broke,
                or something other than logging wrote to ``sys.stdout``).
        """
        parsed = []
        for number, line in enumerate(self.text.splitlines(), 1):
            try:
                value = json.loads(line)
            except ValueError:
                value = None
            if not isinstance(value, dict):
                raise AssertionError(f"line {number} is not a JSON object: {line[:200]!r}")
            parsed.append(value)
        return parsed

    def events(self, name: str) -> list[dict[str, Any]]:
        """The lines whose ``event`` is *name*, in order."""
        return [line for line in self.all() if line.get("event") == name]

    def clear(self) -> None:
        """Forget what was written so far; later lines are still captured."""
        self._stream.seek(0)
        self._stream.truncate()

    def __repr__(self) -> str:
        return f"<CapturedLogs {len(self.text.splitlines())} line(s)>"


# Buffers of the captures now open, innermost last: where the pipeline goes back to.
_open: list[io.StringIO] = []


@contextmanager
def capture_pipeline(settings: Settings | None = None, **overrides: Any) -> Iterator[CapturedLogs]:
    """Build Mina's pipeline writing its stdout lines into a `CapturedLogs`.

    *settings* (default: `mina.settings.Settings.from_env`) with *overrides* applied
    (``log_level=logging.DEBUG``, ``send_pii=True``, ``logging_config=path``, ...) are
    passed to `mina.logging_config.configure_logging` with ``force=True``. ``sys.stdout``
    is the capture buffer until the block ends, so an application that configures logging
    again inside the block (``mina.create_app`` with other settings) still writes there.

    On exit ``sys.stdout`` comes back and the pipeline is rebuilt from *settings*, writing
    to the enclosing capture or else to the process's own stdout (``sys.__stdout__``, which
    pytest's capture still sees), never to a stream that may be closed later.
    """
    from mina.logging_config import configure_logging
    from mina.settings import ConfigError
    from mina.settings import Settings as _Settings

    base = _Settings.from_env() if settings is None else settings
    stream = io.StringIO()
    previous = sys.stdout
    _open.append(stream)
    sys.stdout = stream
    try:
        configure_logging(replace(base, **overrides), force=True)
        yield CapturedLogs(stream)
    finally:
        _open.remove(stream)
        sys.stdout = _open[-1] if _open else (sys.__stdout__ or io.StringIO())
        try:
            configure_logging(base, force=True)
        except ConfigError:  # the base configuration was never used: the packaged one is
            configure_logging(_Settings(), force=True)
        finally:
            sys.stdout = previous
