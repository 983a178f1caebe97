"""``mina serve``: Mina under gunicorn, with Mina's gunicorn configuration.

The command replaces itself with ``python -m gunicorn --config python:mina.gunicorn_conf
'mina:create_app()'``: one process tree exactly like the documented gunicorn command, so
signals reach gunicorn's master directly (TERM or INT: graceful shutdown, each worker
flushing Sentry as it exits; HUP: reload). The options become the ``MINA_BIND``,
``MINA_WORKERS`` and ``MINA_THREADS`` variables `mina.gunicorn_conf` reads, so a value
is validated in one place whichever way it was given.
"""

from __future__ import annotations

import os
import sys
from typing import Final

import click

from mina.settings import SERVER_DEFAULTS

__all__ = ["gunicorn_argv", "serve"]

_APP: Final = "mina:create_app()"


def gunicorn_argv() -> list[str]:
    """The gunicorn command line `serve` runs, with this interpreter."""
    return [sys.executable, "-m", "gunicorn", "--config", "python:mina.gunicorn_conf", _APP]


@click.command("serve")
@click.option(
    "--bind",
    "-b",
    metavar="HOST:PORT",
    help=f"Address to listen on [default: MINA_BIND, else {SERVER_DEFAULTS['MINA_BIND']}].",
)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(min=1),
    help=f"Worker processes [default: MINA_WORKERS, else {SERVER_DEFAULTS['MINA_WORKERS']}].",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help=f"Threads per worker [default: MINA_THREADS, else {SERVER_DEFAULTS['MINA_THREADS']}].",
)
def serve(bind: str | None, workers: int | None, threads: int | None) -> None:
    """Serve Mina with gunicorn; stdout is the pipeline's lines, gunicorn's own included.

    Stop it with Ctrl-C or SIGTERM: workers finish their requests (gunicorn's graceful
    timeout) and flush Sentry. A bad setting stops start-up with one line naming the
    variable (exit 2).
    """
    env = dict(os.environ)
    for name, value in (("MINA_BIND", bind), ("MINA_WORKERS", workers), ("MINA_THREADS", threads)):
        if value is not None:
            env[name] = str(value)
    argv = gunicorn_argv()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)  # no shell, no child: gunicorn's master is this process
