"""Mina: meetings and their transcription, observed through one structured-logging pipeline."""

from __future__ import annotations

from mina.app import create_app
from mina.logging_config import get_logger
from mina.settings import package_version

__version__ = package_version()

__all__ = ["__version__", "create_app", "get_logger"]
