"""The chunk job: measure an uploaded chunk's level, once, on whichever worker takes it.

`Jobs` is one process's broker (``MINA_BROKER_URL``, `mina.jobs.broker`) with Mina's
actors declared on it and `mina.jobs.middleware` installed. The upload stores the chunk
and its WAV in one transaction, then sends ``process_chunk`` with the chunk's id:

- delivered twice (a worker killed after its commit, a re-drive), the job changes
  nothing the second time: a ``processed`` chunk stays as it is (`mina.db.settle_chunk`);
- failing past `MAX_RETRIES` retries, it marks the chunk ``failed`` and stays a dead
  letter (``mina jobs list``), with one ``job.failed`` line: one Sentry event; replayed
  (``mina jobs retry``), it may still process the chunk;
- lost between the commit and the send (the process died, the broker was down), it is
  sent again by `Jobs.redrive`, which `Runner` calls every `REDRIVE_EVERY_S` for chunks
  still ``received`` `REDRIVE_AFTER` after upload.

`Runner` runs Dramatiq's worker threads and the re-drive inside a process: ``mina
worker``, or each gunicorn worker of ``mina serve`` when ``MINA_BROKER_URL`` is unset.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any, Final

import dramatiq
from dramatiq import Worker
from dramatiq.broker import Broker
from dramatiq.middleware import Middleware, Retries

from mina import audio, db
from mina.jobs.broker import broker_from_url
from mina.jobs.middleware import install
from mina.observability.pipeline import get_logger
from mina.observability.tracing import span
from mina.settings import Settings

__all__ = [
    "ACTOR",
    "MAX_RETRIES",
    "QUEUE",
    "REDRIVE_AFTER",
    "REDRIVE_EVERY_S",
    "Jobs",
    "Runner",
]

#: The queue of chunk jobs, and the actor's name in messages.
QUEUE: Final = "chunks"
ACTOR: Final = "process_chunk"
#: Retries after the first attempt, with Dramatiq's exponential backoff between them.
MAX_RETRIES: Final = 3
_MIN_BACKOFF_MS: Final = 1_000
_MAX_BACKOFF_MS: Final = 30_000
#: A chunk still ``received`` this long after upload is sent again (its job was lost).
#: Longer than the queue's usual wait: a chunk sent twice is harmless, but work twice.
REDRIVE_AFTER: Final = timedelta(seconds=120)
#: How often a `Runner` looks for such chunks.
REDRIVE_EVERY_S: Final = 60.0
_REDRIVE_BATCH: Final = 500
_STOP_MS: Final = 30_000

log = get_logger("mina.jobs.chunks")


class Jobs:
    """One process's broker, with the chunk actor declared on it.

    :param min_backoff_ms: the first retry's delay (doubling for each next one).

    :ivar process_chunk: the actor; ``jobs.process_chunk.send(chunk_id)`` enqueues.
    """

    def __init__(self, settings: Settings, *, min_backoff_ms: int = _MIN_BACKOFF_MS) -> None:
        self.database = str(settings.database)
        if settings.broker_url is None:  # the instance folder, as for the database
            settings.queue_file.parent.mkdir(parents=True, exist_ok=True)
        self.broker: Broker = broker_from_url(settings.broker_url, settings.queue_file)
        install(self.broker)
        # Before Retries, like JobContext: Dramatiq runs after-hooks in reverse, so this
        # sees message.failed as Retries decided it.
        self.broker.add_middleware(_FailChunk(self.database), before=Retries)
        self.process_chunk: dramatiq.Actor[[int], None] = dramatiq.actor(
            broker=self.broker,
            actor_name=ACTOR,
            queue_name=QUEUE,
            max_retries=MAX_RETRIES,
            min_backoff=min_backoff_ms,
            max_backoff=_MAX_BACKOFF_MS,
        )(self._process_chunk)

    def _process_chunk(self, chunk_id: int) -> None:
        conn = db.thread_connection(self.database)
        chunk = db.get_chunk(conn, chunk_id)
        if chunk is None or chunk.status == "processed":
            # Delivered again after it finished, or the meeting was deleted meanwhile.
            log.info("chunk.skipped", chunk_id=chunk_id, status=chunk and chunk.status)
            return
        data = db.chunk_wav(conn, chunk_id)
        if data is None:  # uploaded before chunks kept their audio: nothing to measure
            db.settle_chunk(conn, chunk_id, "failed")
            log.warning("chunk.no_audio", chunk_id=chunk_id)
            return
        wav = audio.read_wav(data)
        with span("audio", "RMS level", size_bytes=len(wav.frames)):
            rms_dbfs = audio.rms_dbfs(wav.frames, wav.sample_width)
        if db.settle_chunk(conn, chunk_id, "processed", rms_dbfs=rms_dbfs):
            # "rms_dbfs", not "level": that key is the log line's own level.
            log.info(
                "chunk.processed",
                chunk_id=chunk_id,
                audio_ms=wav.duration_ms,
                rms_dbfs=round(rms_dbfs, 2),
            )

    def redrive(self, older_than: timedelta = REDRIVE_AFTER) -> int:
        """Send the job again for chunks still ``received`` *older_than* after upload.

        :returns: how many were sent.
        """
        conn = db.thread_connection(self.database)
        chunk_ids = db.received_chunks(conn, older_than, _REDRIVE_BATCH)
        for chunk_id in chunk_ids:
            self.process_chunk.send(chunk_id)
        if chunk_ids:
            log.warning("chunk.redriven", chunks=len(chunk_ids), first_chunk_id=chunk_ids[0])
        return len(chunk_ids)


class _FailChunk(Middleware):
    """Mark a chunk ``failed`` once its job has failed for good (retries spent)."""

    def __init__(self, database: str) -> None:
        self.database = database

    def after_process_message(
        self,
        broker: Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """After Retries: a failed message of the chunk actor fails its chunk."""
        if exception is None or not message.failed or message.actor_name != ACTOR:
            return
        (chunk_id,) = message.args
        db.settle_chunk(db.thread_connection(self.database), chunk_id, "failed")


class Runner:
    """Dramatiq worker threads for *jobs*, and the periodic re-drive, in this process.

    :param queues: the queues to consume (default: every declared one); the re-drive
        runs only where the chunk queue is consumed.
    :param redrive_every_s: how often to re-drive; *redrive_after*: for chunks this old.
    """

    def __init__(
        self,
        jobs: Jobs,
        *,
        threads: int,
        queues: set[str] | None = None,
        redrive_every_s: float = REDRIVE_EVERY_S,
        redrive_after: timedelta = REDRIVE_AFTER,
    ) -> None:
        self.jobs = jobs
        self._redrive_after = redrive_after
        self.worker = Worker(jobs.broker, queues=queues, worker_threads=threads)
        self._redrive_every_s = redrive_every_s
        self._stopping = threading.Event()
        self._redrive: threading.Thread | None = None
        if queues is None or QUEUE in queues:
            self._redrive = threading.Thread(
                target=self._redrive_loop, name="mina-redrive", daemon=True
            )

    def start(self) -> None:
        """Start consuming, and re-driving."""
        self.worker.start()
        if self._redrive is not None:
            self._redrive.start()

    def stop(self, timeout_ms: int = _STOP_MS) -> None:
        """Stop taking jobs and wait up to *timeout_ms* for the running ones."""
        self._stopping.set()
        self.worker.stop(timeout=timeout_ms)
        if self._redrive is not None and self._redrive.is_alive():
            self._redrive.join(timeout=timeout_ms / 1000)

    def _redrive_loop(self) -> None:
        while not self._stopping.wait(self._redrive_every_s):
            try:
                self.jobs.redrive(self._redrive_after)
            except Exception:  # a broker or database outage: try again next round
                log.exception("chunk.redrive_failed")
