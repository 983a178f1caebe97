"""Task-queue candidates for Mina's chunk work, measured: ``python -m bench.queue``.

Each candidate (Huey, Celery, Dramatiq, RQ) runs the same job, `bench.queue.jobs.record`,
in an embedded mode (no server: a SQLite file) where it has one and against a private
``redis-server`` on loopback. `bench.queue.__main__` explains the three phases (throughput,
latency, SIGKILL and restart); ``docs/decisions/task-queue.md`` quotes the results.
The candidates are not Mina dependencies: install them into the venv to run this.
"""
