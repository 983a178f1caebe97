"""The application factory: settings, logging and Sentry once, then hooks and routes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import flask
from werkzeug.exceptions import HTTPException, InternalServerError

from mina import api, auth, bodies, db, ops
from mina.commands import config as config_command
from mina.commands import logs as logs_command
from mina.commands import sentry_check as sentry_check_command
from mina.commands import users as users_command
from mina.envfile import loaded_env_file
from mina.errors import http_error
from mina.jobs.chunks import Jobs
from mina.logging_config import configure_logging, get_logger
from mina.observability.flask import Observability
from mina.observability.sentry import init_sentry
from mina.settings import Settings, old_data_hint

__all__ = ["create_app"]

_log = get_logger("mina.app")


def create_app(config: Mapping[str, Any] | None = None) -> flask.Flask:
    """Create Mina's Flask app.

    Reads the environment (string values in *config* override variables of the same
    name, other keys only go to ``app.config``), configures logging and Sentry once per
    process, installs the request hooks and registers the routes.

    :raises mina.settings.ConfigError: for any invalid setting, naming the variable.
    """
    config = dict(config or {})
    overrides = {key: value for key, value in config.items() if isinstance(value, str)}
    env = {**os.environ, **overrides}
    settings = Settings.from_env(env)
    redactor = configure_logging(settings)
    env_file = loaded_env_file()
    _log.info(
        "config.loaded",
        env_file=None if env_file is None else str(env_file),
        database=str(settings.database),
    )
    hint = old_data_hint(settings, env)
    if hint is not None:
        _log.warning("config.old_data", hint=hint)
    init_sentry(settings, redactor)

    app = flask.Flask("mina", instance_path=str(settings.instance_path))
    bodies.init_app(app, settings.max_json_bytes)
    app.config.update(MINA_DATABASE=str(settings.database), MINA_SETTINGS=settings)
    app.config.update(config)
    Observability(app, settings)
    db.init_app(app)
    # The broker of this app's process; its worker threads start elsewhere (`mina worker`,
    # or gunicorn's post_worker_init in the embedded mode), not in every app.
    app.extensions["mina.jobs"] = Jobs(settings)
    auth.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(ops.bp)
    # Also `flask --app mina users list` and friends, with the app's database.
    for command in (
        users_command.users,
        config_command.config,
        sentry_check_command.sentry_check,
        logs_command.logs,
    ):
        app.cli.add_command(command)
    if settings.enable_test_routes:
        app.register_blueprint(ops.test_bp)
    # JSON errors carrying the request id. A 500 handler (not an Exception handler) keeps
    # Flask's got_request_exception signal, which is how Sentry sees unhandled errors.
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(InternalServerError, http_error)
    return app
