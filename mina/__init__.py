"""Mina: meetings and their transcription, observed through one structured-logging pipeline."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("mina")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

from mina.app import create_app

__all__ = ["__version__", "create_app"]
