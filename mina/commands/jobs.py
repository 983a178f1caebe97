"""``mina jobs``: the embedded queue's pending jobs and dead letters, and replaying them.

Reads the SQLite broker's file (``<instance>/jobs.sqlite3``) without starting a worker.
With ``MINA_BROKER_URL`` set, the jobs are in Redis, which these commands do not read:
they say so and exit 1.
"""

from __future__ import annotations

import time

import click

from mina.commands import say_old_data
from mina.jobs.sqlite_broker import SQLiteBroker
from mina.settings import ConfigError, Settings

__all__ = ["jobs"]


def _broker() -> SQLiteBroker:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    say_old_data(settings)
    if settings.broker_url is not None:
        raise click.ClickException(
            "MINA_BROKER_URL is set: the jobs are in Redis, not in the embedded queue"
        )
    settings.queue_file.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteBroker(settings.queue_file)


@click.group("jobs")
def jobs() -> None:
    """The embedded job queue (MINA_BROKER_URL unset): counts and dead letters."""


@jobs.command("list")
def list_() -> None:
    """Jobs per queue (queued, running, dead), then each dead letter with its error."""
    broker = _broker()
    counts = broker.counts()
    click.echo(f"{'QUEUE':<16} {'QUEUED':>7} {'RUNNING':>7} {'DEAD':>5}")
    for queue in sorted({queue for queue, _ in counts}):
        queued, leased, dead = (
            counts.get((queue, state), 0) for state in ("queued", "leased", "dead")
        )
        click.echo(f"{queue:<16} {queued:>7} {leased:>7} {dead:>5}")
    letters = broker.dead_letters()
    if not letters:
        return
    click.echo()
    click.echo(f"{'ID':>6} {'QUEUE':<16} {'TASK':<16} {'ARGS':<16} {'AGE':>8}  ERROR")
    now = time.time()
    for letter in letters:
        message = letter.message
        traceback = str(message.options.get("traceback") or "").strip().splitlines()
        error = traceback[-1] if traceback else "(killed its worker)"
        args = ",".join(str(arg) for arg in message.args)
        age = f"{now - letter.dead_at:.0f}s"
        click.echo(
            f"{letter.id:>6} {letter.queue:<16} {message.actor_name:<16} {args:<16} {age:>8}"
            f"  {error}"
        )


@jobs.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "all_", is_flag=True, help="Replay every dead letter.")
def retry(ids: tuple[int, ...], all_: bool) -> None:
    """Queue dead letters IDS (from 'mina jobs list') again, or --all of them."""
    if bool(ids) == all_:
        raise click.UsageError("give dead letter ids or --all, not both")
    broker = _broker()
    chosen = [letter.id for letter in broker.dead_letters()] if all_ else list(ids)
    missing = [dead_id for dead_id in chosen if not broker.replay(dead_id)]
    click.echo(f"queued again: {len(chosen) - len(missing)}")
    if missing:
        raise click.ClickException(
            "not dead letters (replayed already?): " + ",".join(map(str, missing))
        )
