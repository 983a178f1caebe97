"""Jobs: work that leaves the request, to a task queue, with its context carried.

So far this package holds the queue-independent part: `mina.jobs.carry`, which turns the
enqueueing request's context and Sentry trace into a job's message headers (only the
registered context keys, redacted) and back. The queue itself is chosen in
``docs/decisions/task-queue.md``.
"""
