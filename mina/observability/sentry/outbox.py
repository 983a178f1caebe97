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
called from a background thread, makes what was put since durable (one ``syncfs`` of the
outbox's file system on Linux: a per-file fsync costs ~3 ms on a journaled disk, slower
than a traced service puts envelopes), which is what survives a power cut. A request thus
never waits for the disk to confirm a write, and a power cut can lose at most what was put
since the last `sync`.

Bounds: a put that takes this process's count over a bound is followed by `make_room`,
which claims the drop order's first envelopes at once (a rename each, no scan), so one
process never holds more than the bound however fast it puts; the janitor's `over_bounds`
rescans the directory (at least every `_SCAN_EVERY`, every `_SCAN_NEAR_EVERY` near a
bound) to count what other processes put and sent. The slack is therefore what *other*
processes put since this one's last scan.

Nothing here imports sentry_sdk: the store only knows bytes.

Over 400 lines because every operation on the directory (write, probe, claim, release,
recover, bounds, purge) shares its layout, its id format and the process's claims.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

__all__ = ["STALE_CLAIM_SECONDS", "Claim", "Entry", "Outbox", "OutboxFull"]

#: A claim older than this goes back to ``pending/`` even if its process looks alive
#: (the process id may belong to someone else by now). One send takes seconds at most.
STALE_CLAIM_SECONDS: Final = 120.0
_STALE_TMP_SECONDS: Final = 60.0
_SCAN_EVERY: Final = 1.0  # seconds between rescans while well under the bounds
_SCAN_NEAR_EVERY: Final = 0.1  # ... and above `_NEAR` of a bound (others' puts count)
_NEAR: Final = 0.9
_SUFFIX: Final = ".envelope"
_ID: Final = re.compile(r"[cet]\d{19}-\d+-\d+")
_CLAIM: Final = re.compile(r"(?P<id>[cet]\d{19}-\d+-\d+)\.(?P<pid>\d+)\.(?P<at>\d+)")

#: What an envelope holds, which decides its place in the send and drop orders.
Kind = Literal["report", "error", "other"]
_RANKS: Final[dict[str, str]] = {"report": "c", "error": "e", "other": "t"}
_KINDS: Final[dict[str, Kind]] = {"c": "report", "e": "error", "t": "other"}
_DROP_ORDER: Final[tuple[Kind, ...]] = ("other", "error", "report")


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
    #: Size in bytes (what deleting it frees).
    size: int = 0
    #: Already taken off this process's count (a drop chosen by `Outbox.make_room`).
    settled: bool = False

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
        # Count and bytes at the last scan, plus what this process put and minus what it
        # deleted since: what `make_room` bounds without scanning.
        self._estimate = [0, 0]
        self._scanned_at = -_SCAN_EVERY
        # The pending envelopes known to this process, by kind, oldest first: the last
        # scan's plus this process's puts since (ids and sizes only; some may be gone).
        # `make_room` drops from their heads; each scan rebuilds them, so they hold at
        # most what the directory holds plus one scan interval of puts.
        self._queues: dict[Kind, deque[tuple[str, int]]] = {k: deque() for k in _DROP_ORDER}
        self._during: list[tuple[Kind, str, int]] | None = None  # puts while scanning
        # Ids this process took off the count since the last scan (sent, or dropped): any
        # other envelope found gone was removed by another process, and comes off it then.
        self._gone: dict[str, int] = {}  # id -> size
        self._dropping: set[str] = set()  # claimed by `make_room`, not deleted yet

    def after_fork(self) -> None:
        """Start afresh in a forked child: the parent's threads (and the locks they may have
        held) are not there, and its claims and unsynced files stay the parent's."""
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._claims_lock = threading.Lock()
        self._mine = {}
        self._unsynced = []
        self._queues = {k: deque() for k in _DROP_ORDER}
        self._during = None
        self._gone = {}
        self._dropping = set()

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
            self._queues[kind].append((id_, len(data)))
            if self._during is not None:
                self._during.append((kind, id_, len(data)))
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
        """Make every envelope this process put since the last call durable (those still
        pending) and the ``pending/`` directory; return how many files that covered.

        One ``syncfs`` where the C library has it (Linux), else an fsync per file."""
        with self._stats_lock:
            ids, self._unsynced = self._unsynced, []
        if ids and _syncfs is not None:
            try:
                fd = os.open(self._pending, os.O_RDONLY)
            except FileNotFoundError:  # removed meanwhile: nothing left to make durable
                return 0
            try:
                if _syncfs(fd) == 0:
                    return sum(os.path.exists(self._pending / (i + _SUFFIX)) for i in ids)
            finally:
                os.close(fd)
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
        return Claim(entry.id, target, entry.size)

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
        if claim.settled:
            with self._stats_lock:
                self._dropping.discard(claim.id)
        else:
            with self._stats_lock:
                self._estimate[0] -= 1
                self._estimate[1] -= claim.size
                self._gone[claim.id] = claim.size

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
        """Rescan the directory when due (its count then includes other processes' puts
        and sends) and claim what puts it over its bounds, as `make_room` does. Envelopes
        being sent are counted but never chosen. The caller reads (to count what is lost)
        and deletes each claim."""
        with self._stats_lock:
            count, size = self._estimate
        near = count > _NEAR * self.max_envelopes or size > _NEAR * self.max_bytes
        every = _SCAN_NEAR_EVERY if near else _SCAN_EVERY
        if time.monotonic() - self._scanned_at >= every:
            self._rescan()
        return self.make_room()

    def _rescan(self) -> None:
        # Outside the pruning lock: a put's `make_room` never waits for a scan. What is
        # put meanwhile is noted and added to the new queues if the scan missed it.
        with self._stats_lock:
            self._during = []
            self._gone = {}
            self._estimate = [0, 0]  # from now on, changes count on top of the scan
            dropping = set(self._dropping)  # already off the count, maybe still there
        pending: list[Entry] = []
        count = size = 0
        seen: set[str] = set()
        for entry in self.entries():
            # Seen twice when claimed between the two directories' listings.
            if entry.id in seen or entry.id in dropping:
                continue
            count += 1
            size += entry.size
            seen.add(entry.id)
            if entry.state == "pending":
                pending.append(entry)
        queues: dict[Kind, deque[tuple[str, int]]] = {k: deque() for k in _DROP_ORDER}
        for entry in pending:  # in id order: oldest first within each kind
            queues[entry.kind].append((entry.id, entry.size))
        with self._stats_lock:
            # Changes made during the scan counted once: a put the scan saw is in its
            # count already, a deletion it did not see was never in it.
            for kind, id_, length in self._during or ():
                if id_ in seen:
                    count -= 1
                    size -= length
                else:
                    queues[kind].append((id_, length))
            for id_, length in self._gone.items():
                if id_ not in seen:
                    count += 1
                    size += length
            self._during = None
            self._queues = queues
            self._estimate[0] += count
            self._estimate[1] += size
        self._scanned_at = time.monotonic()

    def make_room(self) -> list[Claim]:
        """Claim the envelopes that put this process's count over the bounds, to be
        dropped: oldest non-errors first, then oldest errors, reports last. No scan: a
        rename per envelope, cheap enough for the thread that put (see `over_bounds` for
        other processes' envelopes). The caller reads and deletes each claim."""
        claims: list[Claim] = []
        with self._lock:  # two threads pruning at once would drop twice as much
            while True:
                with self._stats_lock:
                    count, size = self._estimate
                    if count <= self.max_envelopes and size <= self.max_bytes:
                        return claims
                    queue = next((q for q in self._queues.values() if q), None)
                    if queue is None:  # only envelopes being sent: they leave on their own
                        return claims
                    id_, length = queue.popleft()
                claim = self.claim(Entry(id_, self._pending / (id_ + _SUFFIX), length, "pending"))
                if claim is None:  # gone: taken off the count unless our `done` did
                    with self._stats_lock:
                        if id_ not in self._gone:
                            self._estimate[0] -= 1
                            self._estimate[1] -= length
                    continue
                with self._stats_lock:  # counted gone now, not when the caller deletes it
                    self._estimate[0] -= 1
                    self._estimate[1] -= length
                    self._dropping.add(id_)
                    self._gone[id_] = length
                claims.append(Claim(claim.id, claim.path, length, settled=True))

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


def _load_syncfs() -> Callable[[int], int] | None:
    # syncfs(2): one call makes a whole file system durable (glibc >= 2.14, Linux only).
    try:
        syncfs: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        return None
    return syncfs


_syncfs: Final = _load_syncfs()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
