"""The ``mina`` command groups, one module each; `mina.cli` assembles them."""

from __future__ import annotations

import click

from mina.settings import Settings, old_data_hint

__all__ = ["say_old_data"]


def say_old_data(settings: Settings) -> None:
    """Say on stderr, in one line, where data of an older Mina lies (`old_data_hint`)."""
    hint = old_data_hint(settings)
    if hint is not None:
        click.echo(f"mina: {hint}", err=True)
