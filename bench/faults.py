"""Randomized fault trials of the Sentry outbox, in the manner of Vector's disk-buffer tests.

::

    python -m bench.faults --trials 500            # the long run; prints one line per kind
    python -m bench.faults --trials 20 --seed 7    # a given sequence of trials again

Each trial runs a real child process that starts Mina's Sentry (outbox, deferred worker,
sender, janitor) and captures error events with ``sentry_sdk.capture_message``; it writes
``ack <event id>`` to stdout only after the call returned, so an id on stdout is an
*acknowledged* event. Then a fault, one of:

- ``kill``: SIGKILL at a random moment while Sentry refuses connections;
- ``torn``: the same, then a random share of the files left in ``pending/`` cut short at a
  random length (what a power cut does to writes not yet synced) and a half-written file
  added to ``tmp/``;
- ``full``: the outbox on a small tmpfs that fills up while Sentry refuses connections,
  then a normal stop;
- ``readonly``: the outbox's tmpfs remounted read-only at a random moment while Sentry
  answers, then a normal stop.

After the fault a second child (the restart) starts against the same outbox with Sentry
answering and sends what is left. The trial checks, at the loopback ingest:

- every acknowledged event arrived exactly once, except those counted as lost: a file cut
  short (counted ``send_error`` in a client report, one per cut file), an envelope held in
  memory by a stopping process (its ``sentry.outbox_memory_lost`` line) or over the memory
  bound (``queue_overflow`` in a client report);
- nothing arrived that was never captured, and no temporary file outlived its write.

``full`` and ``readonly`` need root and a tmpfs mount; without them they are skipped and
the summary says so. The suite runs a short version (`tests/observability/sentry/
test_fault_trials.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mina.observability.sentry.link import SENDERS

KINDS = ("kill", "torn", "full", "readonly")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Trial:
    """What one trial saw: acknowledged ids, arrivals, counted losses."""

    kind: str
    acked: list[str] = field(default_factory=list)
    arrived: Counter[str] = field(default_factory=Counter)
    cut: set[str] = field(default_factory=set)  # acknowledged ids in files cut short
    counted: int = 0  # losses the processes counted (client reports, lines)
    leftover_tmp: list[str] = field(default_factory=list)
    skipped: str | None = None

    def problems(self) -> list[str]:
        """What broke the guarantee, in words; empty when the trial passed."""
        out = []
        acked = set(self.acked)
        twice = sorted(id_ for id_, n in self.arrived.items() if n > 1)
        # Remounted read-only while envelopes were being sent: Sentry had them, but their
        # files could not be deleted, so the restart sends them again (at most the
        # requests in flight). Sentry drops a repeated event id.
        if len(twice) > (SENDERS if self.kind == "readonly" else 0):
            out.append(f"{len(twice)} events arrived more than once: {twice[:3]}")
        # Captured but not yet acknowledged (killed between the write and the print) may
        # arrive: that is not a problem. An acknowledged one missing must be counted, and
        # so must every file cut short.
        missing = acked - set(self.arrived) - self.cut
        if len(missing) + len(self.cut) > self.counted:
            out.append(
                f"{len(missing)} acknowledged events missing and {len(self.cut)} cut,"
                f" only {self.counted} losses counted"
            )
        arrived_cut = self.cut & set(self.arrived)
        if arrived_cut:
            out.append(f"{len(arrived_cut)} events from files cut short arrived")
        if self.leftover_tmp:
            out.append(f"temporary files left: {self.leftover_tmp[:3]}")
        return out


# -- the child --------------------------------------------------------------------------------


def child(outbox: Path, dsn: str, count: int, pause: float) -> None:
    """Start Mina's Sentry on *outbox* sending to *dsn*, capture *count* events (``ack`` on
    stdout after each call returns), then stop normally (the exit flush runs)."""
    from dataclasses import replace

    import sentry_sdk

    from mina.logging_config import configure_logging
    from mina.observability.sentry import init_sentry
    from mina.settings import Settings

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a normal stop: atexit runs
    settings = replace(
        Settings.from_env(),
        sentry_dsn=dsn,
        sentry_outbox=outbox,
        sentry_timeout=5.0,  # a loaded machine's slow answer is no timeout (no second copy)
        sentry_retry_max=0.5,
        storm_budget=0,
        traces_sample_rate=0.0,
        profiles_sample_rate=0.0,
    )
    init_sentry(settings, configure_logging(settings))
    os.write(1, b"ready\n")
    for i in range(count):
        event_id = sentry_sdk.capture_message(f"fault trial {i}", level="error")
        os.write(1, f"ack {event_id}\n".encode())
        if pause:
            time.sleep(random.uniform(0, pause))
    if count == 0:  # the restart: send what the outbox holds, then stop
        deadline = time.monotonic() + 20
        box = outbox / "pending"
        while time.monotonic() < deadline:
            sentry_sdk.flush(timeout=2)
            sending = outbox / "sending"
            if not any(box.iterdir()) and not any(sending.iterdir()):
                break
            time.sleep(0.1)
    os.write(1, b"done\n")


def _spawn(outbox: Path, dsn: str, count: int, pause: float) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "no_proxy": "127.0.0.1",
        "MINA_SENTRY_OUTBOX": str(outbox),  # never the working directory's
        "MINA_DATABASE": str(outbox.parent / "mina.sqlite3"),
    }
    command = [sys.executable, "-m", "bench.faults", "child", str(outbox), dsn, str(count)]
    return subprocess.Popen(
        [*command, str(pause)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=outbox.parent,
    )


def _wait_ready(process: subprocess.Popen[bytes]) -> list[bytes]:
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line == b"ready\n":
            return lines
    raise RuntimeError(f"the child did not start: {lines[-5:]}")


def _counted(lines: list[bytes]) -> int:
    # Lines the processes wrote about what they lost.
    total = 0
    for raw in lines:
        if not raw.startswith(b"{"):
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if line.get("event") == "sentry.outbox_memory_lost":
            total += int(line["envelopes"])
    return total


def _acked(lines: list[bytes]) -> list[str]:
    return [raw[4:].strip().decode() for raw in lines if raw.startswith(b"ack ")]


# -- the trials -------------------------------------------------------------------------------


def _remount_read_only(fs: Path) -> None:
    # mount refuses (EBUSY, exit 32) while a file on it is open for writing: the service
    # writes an envelope every millisecond, so the moment moves on by a few milliseconds.
    for _ in range(100):
        busy = subprocess.run(["mount", "-o", "remount,ro", str(fs)], stderr=subprocess.DEVNULL)
        if busy.returncode == 0:
            return
        time.sleep(0.005)
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)


def _refused_dsn(key: str) -> str:
    with socket.socket() as sock:  # a port nobody listens on (closed right away)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://{key}@127.0.0.1:{port}/1"


def _mount(target: Path, size: str) -> str | None:
    target.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    return (
        None if result.returncode == 0 else f"needs root and a tmpfs mount: {result.stderr.strip()}"
    )


def _cut_files(outbox: Path, rng: random.Random, trial: Trial, pid: int) -> None:
    for path in sorted((outbox / "pending").iterdir()):
        if rng.random() < 0.3:
            data = path.read_bytes()
            header = json.loads(data.split(b"\n", 1)[0])
            if "event_id" in header:  # a cut client report loses counts, not an event
                trial.cut.add(header["event_id"])
            with path.open("r+b") as file:
                file.truncate(rng.randrange(0, max(len(data) * 9 // 10, 1)))
    (outbox / "tmp").mkdir(parents=True, exist_ok=True)
    # A write the killed process (*pid*) had begun.
    (outbox / "tmp" / f"e{time.time_ns():019d}-{pid}-0.envelope").write_bytes(b'{"event_id":')


def run_trial(kind: str, work: Path, rng: random.Random) -> Trial:
    """One trial of *kind* in the empty directory *work*."""
    from mina.testing import SentryIngest

    trial = Trial(kind)
    outbox = work / "fs" / "box"
    outbox.parent.mkdir(parents=True, exist_ok=True)
    if kind in ("full", "readonly"):
        trial.skipped = _mount(work / "fs", "160k" if kind == "full" else "4m")
        if trial.skipped:
            return trial
    try:
        with SentryIngest() as ingest:
            lines: list[bytes] = []
            if kind in ("kill", "torn"):
                first = _spawn(outbox, _refused_dsn(ingest.public_key), 100_000, 0.002)
                lines += _wait_ready(first)
                time.sleep(rng.uniform(0.0, 1.0))
                first.send_signal(signal.SIGKILL)
            elif kind == "full":
                first = _spawn(outbox, _refused_dsn(ingest.public_key), rng.randint(50, 400), 0.0)
            else:
                first = _spawn(outbox, ingest.dsn, rng.randint(100, 600), 0.001)
                lines += _wait_ready(first)
                time.sleep(rng.uniform(0.0, 0.5))
                _remount_read_only(work / "fs")
            out, _ = first.communicate(timeout=60)
            lines += out.splitlines(keepends=True)
            if kind == "torn":
                _cut_files(outbox, rng, trial, first.pid)
            if kind == "readonly":
                subprocess.run(["mount", "-o", "remount,rw", str(work / "fs")], check=True)
            trial.acked = _acked(lines)
            restart = _spawn(outbox, ingest.dsn, 0, 0.0)
            out, _ = restart.communicate(timeout=60)
            lines += out.splitlines(keepends=True)
            ingest.wait(lambda _: True, timeout=0.1)
            trial.arrived = Counter(event["event_id"] for event in ingest.accepted_events)
            trial.counted = _counted(lines) + _reported(ingest) + _kept_reports(outbox)
            tmp = outbox / "tmp"
            trial.leftover_tmp = sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []
    finally:
        if kind in ("full", "readonly"):
            subprocess.run(["umount", "-l", str(work / "fs")], check=False)
    return trial


def _reported(ingest: Any) -> int:
    return sum(_lost_errors(item.json) for item in ingest.items("client_report"))


def _kept_reports(outbox: Path) -> int:
    # A client report written at the restart's exit, not yet sent: counted all the same
    # (the next process sends it).
    from sentry_sdk.envelope import Envelope

    total = 0
    for path in sorted((outbox / "pending").glob("c*")):
        for item in Envelope.deserialize(path.read_bytes()).items:
            total += _lost_errors(item.payload.json or {})
    return total


def _lost_errors(report: dict[str, Any]) -> int:
    return sum(
        lost["quantity"]
        for lost in report.get("discarded_events", [])
        if lost["category"] == "error"
        and lost["reason"] in ("send_error", "queue_overflow", "cache_overflow")
    )


def run_trials(trials: int, seed: int, kinds: tuple[str, ...] = KINDS) -> list[Trial]:
    """*trials* trials, kinds taken in turn, random moments from *seed*."""
    rng = random.Random(seed)
    done = []
    for n in range(trials):
        with tempfile.TemporaryDirectory(prefix="mina-faults-") as work:
            done.append(run_trial(kinds[n % len(kinds)], Path(work), rng))
    return done


def summary(done: list[Trial]) -> dict[str, dict[str, int]]:
    """Per kind: trials run and skipped, events acknowledged, arrived, counted lost, failed."""
    table: dict[str, dict[str, int]] = {}
    for trial in done:
        row = table.setdefault(
            trial.kind,
            {"trials": 0, "skipped": 0, "acked": 0, "arrived": 0, "counted_lost": 0, "failed": 0},
        )
        row["trials"] += 1
        if trial.skipped:
            row["skipped"] += 1
            continue
        row["acked"] += len(trial.acked)
        row["arrived"] += sum(trial.arrived.values())
        row["counted_lost"] += trial.counted
        row["failed"] += bool(trial.problems())
    return table


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.faults``: run the trials, print a table, exit 1 on any failure."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        child(Path(argv[1]), argv[2], int(argv[3]), float(argv[4]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.faults")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args(argv)
    done = run_trials(args.trials, args.seed, tuple(args.kinds.split(",")))
    print(f"seed {args.seed}")
    for kind, row in summary(done).items():
        print(kind.ljust(9), " ".join(f"{key}={value}" for key, value in row.items()))
    for trial in done:
        for problem in trial.problems():
            print(f"FAILED {trial.kind}: {problem}")
    return 1 if any(trial.problems() for trial in done) else 0


if __name__ == "__main__":
    sys.exit(main())
