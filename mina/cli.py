"""Mina's command line: ``mina``, also ``python -m mina``.

This module holds the main group and registers the commands, each in its own module
under `mina.commands`: ``serve``, ``sentry-check``, ``logs``, ``config`` and ``users``.
``users``, ``config``, ``sentry-check`` and ``logs`` also work as Flask commands
(``flask --app mina users list``): the app adds them to ``app.cli``. ``serve`` does not:
it starts gunicorn, which creates the app itself.
"""

from __future__ import annotations

import click

from mina.commands.config import config
from mina.commands.logs import logs
from mina.commands.sentry_check import sentry_check
from mina.commands.serve import serve
from mina.commands.users import users
from mina.envfile import load_env_file
from mina.settings import package_version

__all__ = ["config", "logs", "main", "sentry_check", "serve", "users"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_version(), "--version", "-V", prog_name="mina")
def main() -> None:
    """Mina: meetings and their transcription.

    Configuration comes from the environment: 'mina config' shows it. Each command
    has --help; docs/cli.md has them all.
    """
    load_env_file()  # as `flask` does; the flask command reads .env by itself


main.add_command(serve)
main.add_command(sentry_check)
main.add_command(logs)
main.add_command(config)
main.add_command(users)
