"""Mina's error answers: one JSON body for the app, the API and token auth."""

from __future__ import annotations

import flask
from werkzeug.exceptions import HTTPException

from mina.observability.flask import ERROR_CODE_ATTR

__all__ = ["http_error", "json_error"]


def json_error(status: int, error: str, message: str | None) -> flask.Response:
    """A JSON error answer, ``{"error", "message", "request_id"}``, with *status*.

    *error* is a code word for programs (``not_found``), *message* a sentence for people;
    the request id lets a user's report lead to the request's lines and Sentry event.
    """
    setattr(flask.g, ERROR_CODE_ATTR, error)  # for the request's finished line
    response = flask.jsonify(error=error, message=message, request_id=flask.g.get("request_id"))
    response.status_code = status
    return response


def http_error(exc: HTTPException) -> flask.Response:
    """Flask error handler: any `HTTPException` as a `json_error`.

    The code word is the exception's ``error`` attribute when it has one (as
    `mina.api.ApiError` does), else its name (``Not Found`` becomes ``not_found``).
    """
    error = getattr(exc, "error", None) or (exc.name or "error").lower().replace(" ", "_")
    return json_error(exc.code or 500, error, exc.description)
