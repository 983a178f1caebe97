"""Jobs: work that leaves the request for a task queue, with its context carried.

The queue is Dramatiq (``docs/decisions/task-queue.md``): `mina.jobs.chunks`, the chunk
job and the worker threads that run it; `mina.jobs.broker`, the broker ``MINA_BROKER_URL``
names; `mina.jobs.carry`, what a job's headers carry of the enqueueing request (registered
context keys, redacted, and the Sentry trace); `mina.jobs.middleware`, its lines and
Sentry scope; `mina.jobs.sqlite_broker`, the embedded broker in one SQLite file;
`mina.jobs.dead_letters`, its dead letters for operators.
"""
