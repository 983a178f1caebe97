"""Bearer-token authentication with Flask-Login.

Clients send ``Authorization: Bearer <token>`` (a token from ``mina users create``) on
every request; nothing is kept in a session or a cookie. The authenticated user is bound
to the log context and the Sentry scope through
`mina.observability.context.bind_user`, which decides whether the email may be kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar, cast

import flask
import flask_login

from mina import db
from mina.errors import json_error
from mina.observability import context

__all__ = ["User", "current_user", "init_app", "login_required"]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class User(flask_login.UserMixin):  # type: ignore[misc]  # flask_login has no stubs
    """The user a request's token belongs to."""

    id: int
    username: str
    email: str | None

    @classmethod
    def from_row(cls, row: db.UserRow) -> User:
        """The user of a ``users`` row."""
        return cls(row.id, row.username, row.email)


class _TokenLoginManager(flask_login.LoginManager):  # type: ignore[misc]
    """A LoginManager that knows bearer tokens only.

    The stock one tries the session and the remember-me cookie first: a stray
    ``remember_token`` cookie would then bypass the token, and without a SECRET_KEY crash
    the request with a 500. (``_load_user`` is Flask-Login 0.6's loading hook.)
    """

    def _load_user(self) -> None:
        self._update_request_context_with_user(self._load_user_from_request(flask.request))


def init_app(app: flask.Flask) -> None:
    """Install token authentication; requires `mina.db.init_app`."""
    manager = _TokenLoginManager(app)
    manager.request_loader(_load_user)
    manager.unauthorized_handler(_unauthorized)


def login_required(view: Callable[P, R]) -> Callable[P, R]:
    """`flask_login.login_required` with its type kept: 401 JSON without a valid token."""
    return cast(Callable[P, R], flask_login.login_required(view))


def current_user() -> User:
    """The authenticated user of the request (in a ``@login_required`` view).

    :raises RuntimeError: when no user is authenticated.
    """
    user = flask_login.current_user
    if not isinstance(user, User):
        raise RuntimeError("no authenticated user; is the view decorated with @login_required?")
    return user


def _load_user(request: flask.Request) -> User | None:
    credentials = request.authorization
    if credentials is None or credentials.type != "bearer" or not credentials.token:
        return None
    row = db.user_for_token(db.get_db(), credentials.token)
    if row is None:
        return None
    user = User.from_row(row)
    context.bind_user(user.id, username=user.username, email=user.email)
    return user


def _unauthorized() -> flask.Response:
    response = json_error(
        401, "unauthorized", "a valid API token is required: send 'Authorization: Bearer <token>'"
    )
    response.headers["WWW-Authenticate"] = 'Bearer realm="mina"'
    return response
