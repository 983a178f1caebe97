"""Mina: meetings and their transcription, observed through one structured-logging pipeline."""

from __future__ import annotations

from mina.settings import package_version

__version__ = package_version()

from mina.app import create_app

__all__ = ["__version__", "create_app"]
