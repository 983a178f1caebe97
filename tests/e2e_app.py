"""Mina plus one test-only route, for the end-to-end runs under real gunicorn.

``/api/meetings/<meeting_id>/explode`` logs a breadcrumb carrying the request id it was
sent with, then fails: each request produces a Sentry event whose breadcrumbs, tags and
user can be checked against the request that made it.
"""

from __future__ import annotations

import flask
import structlog

import mina
from mina import auth


def create_app() -> flask.Flask:
    """Mina's app with the exploding route added."""
    app = mina.create_app()

    @app.get("/api/meetings/<meeting_id>/explode")
    @auth.login_required
    def explode(meeting_id: str) -> str:
        nonce = flask.request.headers.get("X-Request-ID")
        structlog.get_logger("mina.e2e").info("explode.requested", nonce=nonce)
        raise RuntimeError(f"exploded in {meeting_id}")

    return app
