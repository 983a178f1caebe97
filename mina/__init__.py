"""Mina: meetings and their transcription, observed through one structured-logging pipeline.

The names below load on first use, so importing a leaf module (``mina.redaction``, say)
loads neither Flask nor the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mina.app import create_app
    from mina.logging_config import get_logger

__all__ = ["__version__", "create_app", "get_logger"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from mina.app import create_app

        return create_app
    if name == "get_logger":
        from mina.logging_config import get_logger

        return get_logger
    if name == "__version__":
        from mina.settings import package_version

        return package_version()
    raise AttributeError(f"module 'mina' has no attribute {name!r}")
