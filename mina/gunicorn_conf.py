"""gunicorn settings for Mina: ``gunicorn --config python:mina.gunicorn_conf 'mina:create_app()'``.

gunicorn's own records (start-up, worker boots, errors) go through Mina's pipeline, so
stdout stays one JSON object per line. The access log is off: each request already
writes one ``request.finished`` line with its request id, user and meeting.
Settings are validated here, before any worker starts: a bad value, or a database Mina
cannot create or write, stops start-up with one line naming the variable. The nearest
``.env`` file is read first (`mina.envfile`); the real environment wins over it.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from typing import Any

from flask import Flask
from gunicorn import glogging

from mina import db
from mina.envfile import load_env_file
from mina.jobs.chunks import Runner
from mina.logging_config import configure_logging
from mina.observability.sentry.transport import flush_on_exit
from mina.settings import SERVER_DEFAULTS, ConfigError, Settings, bind_address, whole_number

try:
    load_env_file()  # before any variable is read; inherited by the workers
    _settings = Settings.from_env()
    bind = bind_address()  # gunicorn would take a missing port as 8000, overflow past 65535
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


def on_starting(server: Any) -> None:
    """Stop with one line when an address to listen on is taken (a second ``make run``).

    gunicorn would log the error, retry for five seconds and exit with a traceback-like
    tail; here the master, before it binds, tries each TCP address as gunicorn will
    (``SO_REUSEADDR``) and says which one is in use and how to choose another. A master
    re-executed with inherited sockets (``USR2``, systemd) has nothing to check.
    """
    if os.environ.get("GUNICORN_FD") or os.environ.get("LISTEN_FDS"):
        return
    for address in server.cfg.address:
        if not isinstance(address, tuple):
            continue  # unix sockets: gunicorn replaces a stale file itself
        host, port = address[0], address[1]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    continue  # anything else is gunicorn's to report as it binds
                shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
                other = f"[{host}]" if family == socket.AF_INET6 else host
                sys.stderr.write(
                    f"mina: cannot listen on {shown}: the address is already in use (another"
                    f" server?); choose another one: MINA_BIND={other}:"
                    f"{port + 1 if port < 65535 else port - 1} make run\n"
                )
                raise SystemExit(1) from None


#: Job threads per gunicorn worker in the embedded mode (``MINA_BROKER_URL`` unset).
EMBEDDED_JOB_THREADS = 2
_runner: Runner | None = None


def post_worker_init(worker: Any) -> None:
    """Without ``MINA_BROKER_URL``, run the job worker inside this gunicorn worker.

    So ``mina serve`` alone processes chunks, from the SQLite queue every worker shares;
    with a broker URL, ``mina worker`` processes run them instead.
    """
    global _runner
    app = worker.wsgi
    if _settings.broker_url is None and isinstance(app, Flask):
        _runner = Runner(app.extensions["mina.jobs"], threads=EMBEDDED_JOB_THREADS)
        _runner.start()


def worker_exit(server: Any, worker: Any) -> None:
    """Finish the running jobs (embedded mode), then flush Sentry as a worker exits
    (graceful shutdown), so its last events are sent: what Sentry takes within a bound;
    with the outbox, the rest stays on disk."""
    if _runner is not None:
        _runner.stop(timeout_ms=int(worker.cfg.graceful_timeout * 1000))
    flush_on_exit()


worker_class = "mina.gunicorn_worker.ThreadWorker"  # gthread, fixed: see that module
logger_class = GunicornLogger
accesslog = None
errorlog = "-"
# gunicorn 27's control socket sits at one path per user: two servers on one host (tests,
# a second `make run`) would fight over it, and Mina is run by signals anyway.
control_socket_disable = True
