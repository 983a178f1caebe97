"""Jobs: work that leaves the request for a task queue, with its context carried.

The queue is Dramatiq (``docs/decisions/task-queue.md``). Here so far: `mina.jobs.carry`,
what a job's headers carry of the enqueueing request (registered context keys, redacted,
and the Sentry trace); `mina.jobs.sqlite_broker`, the embedded broker in one SQLite file;
`mina.jobs.dead_letters`, its dead letters for operators.
"""
