"""``mina users``: create users, list them, issue and revoke their API tokens.

The database is the one ``MINA_DATABASE`` names; run as a Flask command
(``flask --app mina users list``) it is the app's ``MINA_DATABASE`` setting. A token is
printed once, alone on stdout (``TOKEN=$(mina users token ada)``); only its hash is kept,
so a lost token cannot be shown again, only replaced (``mina users token ada
--revoke-others``).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Final

import click
import flask

from mina import db
from mina.commands import say_old_data
from mina.settings import ConfigError, Settings

__all__ = ["USERNAME_MAX", "users"]

USERNAME_MAX: Final = 64
# Names end up in log lines and Sentry tags: visible characters only, no spaces.
_USERNAME: Final = re.compile(r"[^\s\x00-\x1f\x7f]+")


def _database() -> Path:
    # Created and checked here: a bad MINA_DATABASE is one line, not a traceback.
    try:
        if flask.has_app_context():  # run by the flask command: the app knows its database
            path = Path(flask.current_app.config["MINA_DATABASE"])
        else:
            settings = Settings.from_env()
            say_old_data(settings)
            path = settings.database
        db.initialize(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return path


@contextmanager
def _connection() -> Iterator[tuple[sqlite3.Connection, Path]]:
    path = _database()
    with closing(db.connect(path)) as conn:
        yield conn, path


def _username(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not _USERNAME.fullmatch(value) or len(value) > USERNAME_MAX:
        raise click.BadParameter(
            f"expected 1 to {USERNAME_MAX} visible characters without spaces, got {value!r}"
        )
    return value


def _user(conn: sqlite3.Connection, username: str) -> db.UserRow:
    user = db.find_user(conn, username)
    if user is None:
        raise click.ClickException(f"no user named {username!r}")
    return user


def _when(timestamp: str | None) -> str:
    # Stored as UTC ISO 8601 to the millisecond; to the minute is what a person reads.
    return "never" if timestamp is None else timestamp[:16].replace("T", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _print_token(token: str, message: str) -> None:
    click.echo(token)
    click.echo(
        f"{message} The token above is shown only once: store it now."
        " Clients send it as 'Authorization: Bearer <token>'.",
        err=True,
    )


@click.group()
def users() -> None:
    """Manage users and their API tokens."""


@users.command("create")
@click.argument("username", callback=_username)
@click.option("--email", default=None, help="The user's email (kept out of logs by default).")
def create_user(username: str, email: str | None) -> None:
    """Create user USERNAME and print a new API token for it, once.

    Only the token goes to stdout, so 'TOKEN=$(mina users create ada)' captures it.
    """
    with _connection() as (conn, path):
        try:
            user = db.create_user(conn, username, email)
        except db.UserExists as exc:
            raise click.ClickException(str(exc)) from None
        token = db.create_token(conn, user.id)
    _print_token(token, f"Created user {username!r} (id {user.id}) in {path}.")


@users.command("list")
def list_users() -> None:
    """List the users: id, name, email, when created (UTC), tokens, last use of one."""
    with _connection() as (conn, _):
        rows = db.list_users(conn)
    if not rows:
        click.echo("No users yet; create one with: mina users create NAME", err=True)
        return
    _table(
        ("ID", "USERNAME", "EMAIL", "CREATED", "TOKENS", "LAST USED"),
        [
            (
                str(row.id),
                row.username,
                row.email or "-",
                _when(row.created_at),
                str(row.tokens),
                _when(row.last_used_at),
            )
            for row in rows
        ],
    )


@users.command("tokens")
@click.argument("username", callback=_username)
def list_tokens(username: str) -> None:
    """List USERNAME's API tokens by id (for ``revoke --token-id``); never the tokens."""
    with _connection() as (conn, _):
        tokens = db.list_tokens(conn, _user(conn, username).id)
    if not tokens:
        click.echo(f"{username!r} has no tokens; issue one with: mina users token {username}")
        return
    _table(
        ("TOKEN ID", "CREATED", "LAST USED"),
        [(str(t.id), _when(t.created_at), _when(t.last_used_at)) for t in tokens],
    )


@users.command("token")
@click.argument("username", callback=_username)
@click.option("--revoke-others", is_flag=True, help="Also revoke every other token of this user.")
def issue_token(username: str, revoke_others: bool) -> None:
    """Issue a new API token for USERNAME and print it, once (a lost token is replaced so).

    Only the token goes to stdout, so 'TOKEN=$(mina users token ada)' captures it.
    """
    with _connection() as (conn, _):
        user = _user(conn, username)
        token = db.create_token(conn, user.id)
        token_id = db.list_tokens(conn, user.id)[-1].id  # ids grow: the newest is last
        revoked = db.revoke_tokens(conn, user.id, keep=token) if revoke_others else 0
    message = f"Issued token {token_id} for {username!r}."
    if revoke_others:
        message += f" Revoked {_count(revoked)} other{'s' if revoked != 1 else ''}."
    _print_token(token, message)


@users.command("revoke")
@click.argument("username", callback=_username)
@click.option(
    "--token-id", type=int, default=None, help="Only this token (see 'mina users tokens')."
)
def revoke(username: str, token_id: int | None) -> None:
    """Revoke USERNAME's API tokens: all of them, or the one ``--token-id`` names."""
    with _connection() as (conn, _):
        revoked = db.revoke_tokens(conn, _user(conn, username).id, token_id=token_id)
    if token_id is not None and not revoked:
        raise click.ClickException(f"{username!r} has no token with id {token_id}")
    click.echo(f"Revoked {_count(revoked)} token{'s' if revoked != 1 else ''} of {username!r}.")


def _count(number: int) -> str:
    return "no" if number == 0 else str(number)
