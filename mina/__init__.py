"""Mina: meetings and their transcription, observed through one structured-logging pipeline."""

from __future__ import annotations

from mina.app import create_app
from mina.settings import package_version

__version__ = package_version()

__all__ = ["__version__", "create_app"]
