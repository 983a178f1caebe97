"""The on-disk outbox: Sentry envelopes kept in a directory until Sentry has them.

Layout under the outbox directory::

    tmp/       envelopes being written (then renamed into ``pending/``)
    pending/   complete envelopes waiting to be sent, one file each
    sending/   envelopes claimed by one process: ``<id>.<pid>.<claimed unix time>``

Every step is one ``os.replace``/``os.rename`` within one file system, so several
processes (gunicorn workers, ``mina outbox flush``) can share a directory: whoever renames
a file out of ``pending/`` owns it, and a file is never sent by two of them. A claim whose
process has died (or that is older than `STALE_CLAIM_SECONDS`) goes back to ``pending/``,
which is how a restarted process resumes what a killed one left behind.

An id is ``<rank><nanoseconds>-<pid>-<sequence>``; rank ``c`` marks a client report (the
count of what was lost), ``e`` an envelope holding an error event, ``t`` anything else
(transactions, sessions, logs). Sorting ids sorts reports, then errors, then the rest,
each oldest first: the order they are sent in. The bounds drop the other way round:
oldest ``t`` first, errors only when no ``t`` is left, reports last.

Durability: `Outbox.put` writes and renames on the calling thread (a request's), which
is enough to survive the process being killed (the page cache is the kernel's); `sync`,
called from a background thread, fsyncs what was put since (files and directory), which
is what survives a power cut. A request thus never waits for the disk to confirm a write,
and a power cut can lose at most what was put since the last `sync` (milliseconds).

Nothing here imports sentry_sdk: the store only knows bytes.

Over 400 lines because every operation on the directory (write, probe, claim, release,
recover, bounds, purge) shares its layout, its id format and the process's claims.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

__all__ = ["STALE_CLAIM_SECONDS", "Claim", "Entry", "Outbox", "OutboxFull"]

#: A claim older than this goes back to ``pending/`` even if its process looks alive
#: (the process id may belong to someone else by now). One send takes seconds at most.
STALE_CLAIM_SECONDS: Final = 120.0
_STALE_TMP_SECONDS: Final = 60.0
_SCAN_EVERY: Final = 1.0  # seconds between bound checks while well under the bounds
_NEAR: Final = 0.9  # above this share of a bound, every check scans
_SUFFIX: Final = ".envelope"
_ID: Final = re.compile(r"[cet]\d{19}-\d+-\d+")
_CLAIM: Final = re.compile(r"(?P<id>[cet]\d{19}-\d+-\d+)\.(?P<pid>\d+)\.(?P<at>\d+)")

#: What an envelope holds, which decides its place in the send and drop orders.
Kind = Literal["report", "error", "other"]
_RANKS: Final[dict[str, str]] = {"report": "c", "error": "e", "other": "t"}
_KINDS: Final[dict[str, Kind]] = {"c": "report", "e": "error", "t": "other"}


class OutboxFull(Exception):
    """The outbox directory cannot take an envelope (disk full, read-only, ...).

    :param reason: what `/healthz` and the log lines say: ``outbox_read_only``,
        ``outbox_full``, ``outbox_permission_denied`` or ``outbox_write_failed: <ERRNO>``.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


_REASONS: Final[dict[int, str]] = {
    errno.EROFS: "outbox_read_only",
    errno.ENOSPC: "outbox_full",
    errno.EDQUOT: "outbox_full",
    errno.EFBIG: "outbox_full",  # a file-size limit (RLIMIT_FSIZE, a quota on one file)
    errno.EACCES: "outbox_permission_denied",
    errno.EPERM: "outbox_permission_denied",
}


def _failed(exc: OSError) -> OutboxFull:
    code = exc.errno or 0
    reason = _REASONS.get(code, f"outbox_write_failed: {errno.errorcode.get(code, code)}")
    return OutboxFull(f"{type(exc).__name__}: {exc}", reason)


@dataclass(frozen=True, slots=True)
class Entry:
    """One envelope in the outbox."""

    #: The envelope's id in the outbox (not Sentry's event id).
    id: str
    #: Its file.
    path: Path
    #: Size in bytes.
    size: int
    #: ``pending`` (waiting) or ``sending`` (claimed by a process).
    state: Literal["pending", "sending"]

    @property
    def kind(self) -> Kind:
        """``report`` (a client report), ``error`` (an error event) or ``other``."""
        return _KINDS[self.id[0]]

    @property
    def created(self) -> float:
        """When it was written, in seconds since the epoch."""
        return int(self.id[1:20]) / 1e9


@dataclass(frozen=True, slots=True)
class Claim:
    """An envelope this process renamed into ``sending/``: only it may send or drop it."""

    id: str
    path: Path

    @property
    def kind(self) -> Kind:
        """What the envelope holds (see `Entry.kind`)."""
        return _KINDS[self.id[0]]


class Outbox:
    """A bounded directory of envelopes shared by processes (see the module docstring).

    :param directory: created on first write, with its ``tmp``/``pending``/``sending``.
    :param max_envelopes: most envelopes kept (pending and being sent).
    :param max_bytes: most bytes kept.
    """

    def __init__(self, directory: Path, max_envelopes: int, max_bytes: int) -> None:
        self.directory = directory.absolute()
        self.max_envelopes = max_envelopes
        self.max_bytes = max_bytes
        self._tmp = self.directory / "tmp"
        self._pending = self.directory / "pending"
        self._sending = self.directory / "sending"
        self._seq = itertools.count()
        self._made = False
        self._lock = threading.Lock()  # one pruning at a time
        self._stats_lock = threading.Lock()  # never held for I/O: put() takes it
        # This process's live claims: a claim under our pid that is not here was left by
        # an earlier process that had the same pid (containers reuse small pids). Counted:
        # two threads may claim one envelope in the same second (the sender, the janitor's
        # bounds), and the one that loses must not make the process forget the winner's.
        self._mine: dict[str, int] = {}
        # Held while a claim changes hands (claim, release, done, recover of our own):
        # several threads of this process send, and the janitor must never see a claim
        # between its file and its entry in `_mine` and take it for a predecessor's.
        self._claims_lock = threading.Lock()
        self._unsynced: list[str] = []  # ids put since the last sync()
        # Count and bytes at the last scan plus what this process put since: while well
        # under the bounds, `over_bounds` scans at most once a `_SCAN_EVERY`.
        self._estimate = [0, 0]
        self._scanned_at = -_SCAN_EVERY

    def after_fork(self) -> None:
        """Start afresh in a forked child: the parent's threads (and the locks they may have
        held) are not there, and its claims and unsynced files stay the parent's."""
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._claims_lock = threading.Lock()
        self._mine = {}
        self._unsynced = []

    def _make_dirs(self) -> None:
        if not self._made:
            for path in (self._tmp, self._pending, self._sending):
                path.mkdir(parents=True, exist_ok=True)
            self._made = True

    def put(self, data: bytes, kind: Kind) -> str:
        """Store *data* and return its id: written to ``tmp/``, then renamed into
        ``pending/`` so no reader ever sees half an envelope. `sync` makes it durable.

        :raises OutboxFull: when the file cannot be written.
        """
        id_ = f"{_RANKS[kind]}{time.time_ns():019d}-{os.getpid()}-{next(self._seq)}"
        self._write(id_, data)
        with self._stats_lock:
            self._unsynced.append(id_)
            self._estimate[0] += 1
            self._estimate[1] += len(data)
        return id_

    def _write(self, id_: str, data: bytes) -> None:
        # tmp/<id>, then renamed into pending/. A failure at any step removes the
        # temporary file: a full or failing disk must not fill up with empty files.
        tmp = self._tmp / (id_ + _SUFFIX)
        created = False
        try:
            self._make_dirs()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            created = True
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, self._pending / (id_ + _SUFFIX))
        except OSError as exc:
            if created:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            self._made = False  # the directories may be gone: made again next time
            raise _failed(exc) from exc

    def probe(self, size: int = 4096) -> None:
        """Write *size* bytes into ``tmp/`` and remove them: whether the outbox can take an
        envelope now (checked at start-up and while degraded).

        :raises OutboxFull: when it cannot, with the reason.
        """
        name = self._tmp / f"probe-{os.getpid()}-{threading.get_ident()}"
        created = False
        try:
            self._make_dirs()
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            created = True
            try:
                if os.write(fd, bytes(size)) < size:  # room for part of it only
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            finally:
                os.close(fd)
        except OSError as exc:
            self._made = False
            raise _failed(exc) from exc
        finally:
            if created:
                with contextlib.suppress(OSError):
                    os.unlink(name)

    def sync(self) -> int:
        """fsync every envelope this process put since the last call (those still pending)
        and the ``pending/`` directory; return how many files were synced."""
        with self._stats_lock:
            ids, self._unsynced = self._unsynced, []
        synced = 0
        for id_ in ids:
            try:
                fd = os.open(self._pending / (id_ + _SUFFIX), os.O_RDONLY)
            except FileNotFoundError:  # already sent, claimed or dropped
                continue
            try:
                os.fsync(fd)
                synced += 1
            finally:
                os.close(fd)
        if ids:
            try:
                fd = os.open(self._pending, os.O_RDONLY)
            except FileNotFoundError:  # removed meanwhile: nothing left to make durable
                return synced
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return synced

    def entries(self) -> list[Entry]:
        """Every envelope, pending and being sent, in send order (errors, oldest first)."""
        found = [*self._scan(self._pending, "pending"), *self._scan(self._sending, "sending")]
        found.sort(key=lambda entry: entry.id)
        return found

    def pending(self) -> list[Entry]:
        """The envelopes waiting to be sent, in send order."""
        found = self._scan(self._pending, "pending")
        found.sort(key=lambda entry: entry.id)
        return found

    def _scan(self, directory: Path, state: Literal["pending", "sending"]) -> list[Entry]:
        found = []
        try:
            with os.scandir(directory) as it:
                for item in it:
                    name = item.name
                    id_ = name[: -len(_SUFFIX)] if state == "pending" else name.split(".", 1)[0]
                    if not _ID.fullmatch(id_):
                        continue
                    try:
                        size = item.stat().st_size
                    except FileNotFoundError:  # claimed or deleted meanwhile
                        continue
                    found.append(Entry(id_, Path(item.path), size, state))
        except (FileNotFoundError, NotADirectoryError):  # not made yet, or made impossible
            return []
        return found

    def depth(self) -> tuple[int, int]:
        """How many envelopes, and how many bytes, the outbox holds."""
        entries = self.entries()
        return len(entries), sum(entry.size for entry in entries)

    def find(self, id_: str) -> Entry | None:
        """The envelope *id_*, pending or being sent, or ``None``."""
        return next((entry for entry in self.entries() if entry.id == id_), None)

    def claim(self, entry: Entry) -> Claim | None:
        """Rename pending *entry* into ``sending/`` for this process; ``None`` if another
        process was first (or it is gone).

        :raises OutboxFull: when the directory cannot be changed (read-only).
        """
        target = self._sending / f"{entry.id}.{os.getpid()}.{int(time.time())}"
        # Known as ours before it exists: `recover` on another thread must never take a
        # claim of this process for a dead predecessor's and put it back while it is sent.
        name = target.name
        with self._claims_lock:
            self._mine[name] = self._mine.get(name, 0) + 1
            try:
                os.rename(self._pending / (entry.id + _SUFFIX), target)
            except OSError as exc:
                left = self._mine.pop(name, 0) - 1
                if left > 0:  # another thread of this process holds it
                    self._mine[name] = left
                if isinstance(exc, FileNotFoundError):  # another process was first
                    return None
                # read-only, gone: the outbox cannot be changed now
                raise _failed(exc) from exc
        return Claim(entry.id, target)

    @staticmethod
    def read(claim: Claim | Entry) -> bytes:
        """The bytes of a claimed (or listed) envelope."""
        return claim.path.read_bytes()

    def release(self, claim: Claim) -> None:
        """Put a claimed envelope back into ``pending/``, its place in the order kept."""
        with self._claims_lock:
            with contextlib.suppress(FileNotFoundError):  # purged meanwhile
                os.rename(claim.path, self._pending / (claim.id + _SUFFIX))
            self._mine.pop(claim.path.name, None)

    def done(self, claim: Claim) -> None:
        """Delete a claimed envelope: it was delivered (or dropped and counted)."""
        with self._claims_lock:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(claim.path)
            self._mine.pop(claim.path.name, None)

    def recover(self) -> int:
        """Return abandoned claims to ``pending/`` and delete abandoned temporary files (at
        once for a process that is gone); return how many envelopes went back.

        A claim is abandoned when its process no longer exists or it is older than
        `STALE_CLAIM_SECONDS`. Also how a new process resumes a killed one's outbox.
        """
        now = time.time()
        recovered = 0
        try:
            with os.scandir(self._sending) as it:
                names = [item.name for item in it]
        except FileNotFoundError:
            return 0
        for name in names:
            match = _CLAIM.fullmatch(name)
            if match is None:
                continue
            pid, at = int(match["pid"]), int(match["at"])
            fresh = now - at < STALE_CLAIM_SECONDS
            if pid != os.getpid() and _alive(pid) and fresh:
                continue
            with self._claims_lock:  # our own: checked and moved with no claim changing
                if pid == os.getpid() and name in self._mine and fresh:
                    continue
                try:
                    os.rename(self._sending / name, self._pending / (match["id"] + _SUFFIX))
                    recovered += 1
                except FileNotFoundError:
                    pass
        try:
            with os.scandir(self._tmp) as it:
                for item in it:
                    # A write of a process that is gone (killed mid-write) will never be
                    # finished: removed at once. Others only once clearly abandoned.
                    written = _ID.match(item.name)
                    writer = int(written.group().split("-")[1]) if written else None
                    dead = writer is not None and writer != os.getpid() and not _alive(writer)
                    try:
                        if dead or now - item.stat().st_mtime > _STALE_TMP_SECONDS:
                            os.unlink(item.path)
                    except FileNotFoundError:
                        pass
        except FileNotFoundError:
            pass
        return recovered

    def over_bounds(self) -> list[Claim]:
        """Claim the envelopes that put the outbox over its bounds, to be dropped: oldest
        non-errors first, then oldest errors. Envelopes being sent are counted but never
        chosen. The caller reads (to count what is lost) and deletes each claim."""
        with self._lock:  # two threads pruning at once would drop twice as much
            with self._stats_lock:
                count, size = self._estimate
            near = count > _NEAR * self.max_envelopes or size > _NEAR * self.max_bytes
            if not near and time.monotonic() - self._scanned_at < _SCAN_EVERY:
                return []
            with self._stats_lock:  # what is put from now on counts on top of the scan
                self._estimate = [0, 0]
            entries = self.entries()
            self._scanned_at = time.monotonic()
            count = len(entries)
            size = sum(entry.size for entry in entries)
            claims = []
            pending = [entry for entry in entries if entry.state == "pending"]
            order = [e for kind in ("other", "error", "report") for e in pending if e.kind == kind]
            for entry in order:
                if count <= self.max_envelopes and size <= self.max_bytes:
                    break
                claim = self.claim(entry)
                if claim is not None:
                    claims.append(claim)
                count -= 1  # claimed by us or by another process: either way it left
                size -= entry.size
            with self._stats_lock:
                self._estimate[0] += count
                self._estimate[1] += size
            return claims

    def purge(self) -> int:
        """Delete every pending envelope; return how many. Claimed ones are left to the
        process sending them."""
        purged = 0
        for entry in self.pending():
            claim = self.claim(entry)
            if claim is not None:
                self.done(claim)
                purged += 1
        return purged


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
