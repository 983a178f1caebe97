"""The Dramatiq broker that ``MINA_BROKER_URL`` names.

- unset or empty: `mina.jobs.sqlite_broker.SQLiteBroker` on a file beside the database,
  so one machine processes jobs with no server;
- ``redis://[:password@]host[:port][/db]``, ``rediss://`` (TLS) or ``unix://path``:
  Dramatiq's `RedisBroker`, for workers on many hosts.

Both give a killed worker's job to another worker after `REDELIVER_S`: the SQLite broker's
lease, the Redis broker's heartbeat timeout. Redis's requeue runs in a maintenance step
on a random share of broker commands; Mina raises Dramatiq's 0.1 % to 10 %, so an idle
worker requeues within seconds of the timeout (measured in
``docs/decisions/task-queue.md``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from dramatiq.broker import Broker
from dramatiq.brokers.redis import RedisBroker

from mina.jobs.sqlite_broker import SQLiteBroker
from mina.settings import check_broker_url

__all__ = ["BROKER_URL", "REDELIVER_S", "broker_from_url"]

#: The variable naming the broker.
BROKER_URL: Final = "MINA_BROKER_URL"
#: Seconds after which a dead worker's job runs again (a live worker's never does).
REDELIVER_S: Final = 30.0
_MAINTENANCE_CHANCE: Final = 100_000  # of Dramatiq's 1_000_000


def broker_from_url(url: str | None, queue_file: str | os.PathLike[str]) -> Broker:
    """Return the broker *url* names (the value of ``MINA_BROKER_URL``).

    :param queue_file: the SQLite file of the embedded broker, used when *url* is unset.
    :raises mina.settings.ConfigError: *url* is not a URL Mina can use; the message
        names the variable and hides the password.
    """
    url = check_broker_url(url)
    if url is None:
        return SQLiteBroker(Path(queue_file), lease_s=REDELIVER_S)
    return RedisBroker(  # type: ignore[no-untyped-call]  # untyped upstream
        url=url,
        heartbeat_timeout=int(REDELIVER_S * 1000),
        maintenance_chance=_MAINTENANCE_CHANCE,
    )
