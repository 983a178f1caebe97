"""Mina's command line: ``mina users create NAME [--email E]``.

The database is the one ``MINA_DATABASE`` names. The ``users`` group also works as a Flask
command (``flask --app mina users create NAME`` once the app adds it to ``app.cli``); it
then uses the app's ``MINA_DATABASE`` setting.
"""

from __future__ import annotations

import re
from contextlib import closing
from pathlib import Path
from typing import Final

import click
import flask

from mina import db
from mina.envfile import load_env_file
from mina.settings import ConfigError, Settings

__all__ = ["main", "users"]

USERNAME_MAX: Final = 64
# Names end up in log lines and Sentry tags: visible characters only, no spaces.
_USERNAME: Final = re.compile(r"[^\s\x00-\x1f\x7f]+")


def _database() -> Path:
    # Created and checked here: a bad MINA_DATABASE is one line, not a traceback.
    try:
        if flask.has_app_context():  # run by the flask command: the app knows its database
            path = Path(flask.current_app.config["MINA_DATABASE"])
        else:
            path = Settings.from_env().database
        db.initialize(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return path


def _username(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not _USERNAME.fullmatch(value) or len(value) > USERNAME_MAX:
        raise click.BadParameter(
            f"expected 1 to {USERNAME_MAX} visible characters without spaces, got {value!r}"
        )
    return value


@click.group()
def main() -> None:
    """Mina: meetings and their transcription."""
    load_env_file()  # as `flask` does; the flask command reads .env by itself


@main.group()
def users() -> None:
    """Manage users and their API tokens."""


@users.command("create")
@click.argument("username", callback=_username)
@click.option("--email", default=None, help="The user's email (kept out of logs by default).")
def create_user(username: str, email: str | None) -> None:
    """Create user USERNAME and print a new API token for it, once.

    Only the token goes to stdout, so ``TOKEN=$(mina users create ada)`` captures it.
    """
    path = _database()
    with closing(db.connect(path)) as conn:
        try:
            user = db.create_user(conn, username, email)
        except db.UserExists as exc:
            raise click.ClickException(str(exc)) from None
        token = db.create_token(conn, user.id)
    click.echo(token)
    click.echo(
        f"Created user {username!r} (id {user.id}) in {path}. The token above is shown only"
        " once: store it now. Clients send it as 'Authorization: Bearer <token>'.",
        err=True,
    )
