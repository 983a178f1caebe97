"""``mina worker``: run queued jobs (the chunk jobs) from ``MINA_BROKER_URL``'s broker.

Needed when ``MINA_BROKER_URL`` names Redis (jobs of many app hosts); without it ``mina
serve`` runs jobs itself, and a ``mina worker`` beside it only adds threads. Each process
writes the pipeline's JSON lines to stdout, like ``mina serve``. SIGTERM or SIGINT stops
it gracefully: no new job is taken, running ones finish (a killed worker's job runs again
elsewhere, `mina.jobs.broker.REDELIVER_S` later). ``--processes N`` starts N such
processes under this one, which passes the signal on and waits for them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from types import FrameType
from typing import Final

import click

from mina import db
from mina.jobs.chunks import QUEUE, Jobs, Runner
from mina.logging_config import configure_logging, get_logger
from mina.observability.sentry import init_sentry
from mina.settings import ConfigError, Settings, mask_dsn

__all__ = ["worker"]

_STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)
#: How long running jobs may take to finish after the stop signal.
STOP_TIMEOUT_S: Final = 30
_log = get_logger("mina.worker")


@click.command("worker")
@click.option(
    "--processes", "-p", type=click.IntRange(min=1), default=1, show_default=True,
    help="Worker processes.",
)  # fmt: skip
@click.option(
    "--threads", "-t", type=click.IntRange(min=1), default=4, show_default=True,
    help="Job threads per process.",
)  # fmt: skip
@click.option(
    "--queues", "-Q", metavar="NAME[,NAME...]", default=QUEUE, show_default=True,
    help="Queues to take jobs from.",
)  # fmt: skip
def worker(processes: int, threads: int, queues: str) -> None:
    """Run queued jobs until SIGTERM or Ctrl-C; a bad setting exits 2 with one line."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        click.echo(f"mina: configuration error: {exc}", err=True)
        raise SystemExit(2) from None
    names = {name.strip() for name in queues.split(",") if name.strip()}
    if not names:
        raise click.BadParameter("name at least one queue", param_hint="--queues")
    if processes > 1:
        raise SystemExit(_supervise(processes, threads, ",".join(sorted(names))))
    _run(settings, threads, names)


def _run(settings: Settings, threads: int, queues: set[str]) -> None:
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for signum in _STOP_SIGNALS:  # first: a signal during start-up stops it after
        signal.signal(signum, on_signal)
    redactor = configure_logging(settings)
    init_sentry(settings, redactor)
    db.initialize(settings.database)
    runner = Runner(Jobs(settings), threads=threads, queues=queues)
    runner.start()
    broker = "embedded" if settings.broker_url is None else mask_dsn(settings.broker_url)
    _log.info("worker.started", broker=broker, queues=sorted(queues), threads=threads)
    while not stop.wait(1.0):  # a timed wait: signals are handled between waits
        pass
    _log.info("worker.stopping", timeout_s=STOP_TIMEOUT_S)
    runner.stop(timeout_ms=STOP_TIMEOUT_S * 1000)
    _log.info("worker.stopped")


def _supervise(processes: int, threads: int, queues: str) -> int:
    # Children, not forks: this process starts no threads (the pipeline's writer, Sentry's
    # sender) that a fork would copy half-way. Each child is a whole `mina worker`.
    argv = [sys.executable, "-m", "mina", "worker", "--threads", str(threads), "-Q", queues]
    children: list[subprocess.Popen[bytes]] = []
    forwarded: set[int] = set()

    def forward(signum: int, _frame: FrameType | None) -> None:
        forwarded.add(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for signum in _STOP_SIGNALS:  # before the children: none is left behind by a signal
        signal.signal(signum, forward)
    for _ in range(processes):
        if forwarded:
            break
        children.append(subprocess.Popen(argv))
    codes = [child.wait() for child in children]
    # A child still starting when the signal came ends by it: stopped as asked, not failed.
    return max((0 if -code in forwarded else code for code in codes), key=abs)
