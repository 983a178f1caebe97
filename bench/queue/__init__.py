"""Task-queue candidates for Mina's chunk work, measured: ``python -m bench.queue``.

Each candidate (Huey, Celery, Dramatiq, RQ) runs the same job, `bench.queue.jobs.record`,
in an embedded mode (no server: a SQLite file) where it has one, Dramatiq also on Mina's
own SQLite broker (`mina.jobs.sqlite_broker`, case ``mina``), and against a private
``redis-server`` on loopback. `bench.queue.__main__` explains the three phases (throughput,
latency, SIGKILL and restart); ``docs/decisions/task-queue.md`` quotes the results.
Only Dramatiq is a Mina dependency: ``pip install huey "celery[redis,sqlalchemy]" rq
dramatiq-sqlite`` into the venv for the others (a missing one is reported as skipped).
"""
