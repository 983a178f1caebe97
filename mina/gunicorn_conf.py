"""gunicorn settings for Mina: ``gunicorn --config python:mina.gunicorn_conf 'mina:create_app()'``.

gunicorn's own records (start-up, worker boots, errors) go through Mina's pipeline, so
stdout stays one JSON object per line. The access log is off: each request already
writes one ``request.finished`` line with its request id, user and meeting.
Settings are validated here, before any worker starts: a bad value, or a database Mina
cannot create or write, stops start-up with one line naming the variable. The nearest
``.env`` file is read first (`mina.envfile`); the real environment wins over it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from gunicorn import glogging

from mina import db
from mina.envfile import load_env_file
from mina.logging_config import configure_logging
from mina.observability.sentry.transport import flush_on_exit
from mina.settings import SERVER_DEFAULTS, ConfigError, Settings, whole_number

try:
    load_env_file()  # before any variable is read; inherited by the workers
    _settings = Settings.from_env()
    workers = whole_number(os.environ, "MINA_WORKERS", int(SERVER_DEFAULTS["MINA_WORKERS"]), 1)
    threads = whole_number(os.environ, "MINA_THREADS", int(SERVER_DEFAULTS["MINA_THREADS"]), 1)
    configure_logging(_settings)  # here, so a bad logging.yaml also stops with one line
    db.initialize(_settings.database)  # not in a worker: its failure would be a traceback
except ConfigError as exc:
    # One line naming the variable, before gunicorn prints a traceback of its own.
    sys.stderr.write(f"mina: configuration error: {exc}\n")
    raise SystemExit(2) from None


class GunicornLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, with its records handed to Mina's handlers instead of its own."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        configure_logging(_settings)  # already done at import: a no-op unless reloaded
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True


def worker_exit(server: Any, worker: Any) -> None:
    """Flush Sentry as a worker exits (graceful shutdown), so its last events are sent:
    what Sentry takes within a bound; with the outbox, the rest stays on disk."""
    flush_on_exit()


bind = os.environ.get("MINA_BIND", SERVER_DEFAULTS["MINA_BIND"])
worker_class = "mina.gunicorn_worker.ThreadWorker"  # gthread, fixed: see that module
logger_class = GunicornLogger
accesslog = None
errorlog = "-"
# gunicorn 27's control socket sits at one path per user: two servers on one host (tests,
# a second `make run`) would fight over it, and Mina is run by signals anyway.
control_socket_disable = True
