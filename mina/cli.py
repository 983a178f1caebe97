"""Mina's command line: ``mina``, also ``python -m mina``.

This module holds the main group; each command lives in its own module under
`mina.commands` and is imported only when it runs (or for ``--help``), so ``mina logs``
and ``mina --version`` start without loading Flask or the Sentry SDK. ``users``,
``config``, ``sentry-check`` and ``logs`` also work as Flask commands
(``flask --app mina users list``): the app adds them to ``app.cli``. ``serve`` does not:
it starts gunicorn, which creates the app itself.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

import click

from mina.envfile import load_env_file
from mina.settings import package_version

__all__ = ["COMMANDS", "main"]

#: Command name -> ``module:attribute`` of the click command.
COMMANDS: Final = {
    "config": "mina.commands.config:config",
    "jobs": "mina.commands.jobs:jobs",
    "logs": "mina.commands.logs:logs",
    "outbox": "mina.commands.outbox:outbox",
    "sentry-check": "mina.commands.sentry_check:sentry_check",
    "serve": "mina.commands.serve:serve",
    "users": "mina.commands.users:users",
    "worker": "mina.commands.worker:worker",
}


class _LazyGroup(click.Group):
    """A group whose `COMMANDS` are imported on first use; ``add_command`` works as usual."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMANDS:
            module, _, attribute = COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            self.add_command(command, cmd_name)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_version(), "--version", "-V", prog_name="mina")
def main() -> None:
    """Mina: meetings and their transcription.

    Configuration comes from the environment: 'mina config' shows it. Each command
    has --help; docs/cli.md has them all.
    """
    load_env_file()  # as `flask` does; the flask command reads .env by itself


def __getattr__(name: str) -> Any:
    # `mina.cli.users` and friends, as before the commands moved to mina.commands.
    key = name.replace("_", "-")
    if key in COMMANDS:
        return main.get_command(click.Context(main), key)
    raise AttributeError(f"module 'mina.cli' has no attribute {name!r}")
