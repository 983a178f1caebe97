"""Mina's public context API: ``mina.context.bind_user``, ``bind_meeting``, ``bind``, ``bound``.

Each call updates the log context and the Sentry scope together. The implementation
lives in `mina.observability.context`; this module is its stable public name.
"""

from __future__ import annotations

# Imported for its registration: the first bind configures the pipeline from the
# environment when nothing else has.
import mina.logging_config  # noqa: F401
from mina.observability.context import bind, bind_meeting, bind_user, bound, clear

__all__ = ["bind", "bind_meeting", "bind_user", "bound", "clear"]
