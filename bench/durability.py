"""The outbox's fault rows, against real gunicorn and the loopback ingest.

::

    python -m bench.durability                 # every row
    python -m bench.durability --only sigkill  # one row (readonly, full, sigkill, slow, storm)

Each row starts a fresh gunicorn (1 worker x 4 threads, stdout to a file that is parsed
afterwards) serving ``bench.app:create_bench_app()`` with its own outbox, and prints what a
user would see:

- ``readonly``: the outbox on a tmpfs mounted read-only, Sentry healthy, 200 requests to
  ``/api/test-sentry-error`` (400 events): delivered, lines about the outbox, ``/healthz``;
- ``full``: the same on a full tmpfs: delivered, counted, temporary files left;
- ``sigkill``: Sentry refusing connections, 400 events, SIGKILL of every process right
  after the last answer, then a restart with Sentry answering: acknowledged ids lost;
- ``slow``: Sentry answering after 8 s, ``MINA_SENTRY_TIMEOUT=5``, 20 events: distinct
  events and copies received in 12 s and in 60 s;
- ``storm``: 1,000 identical logged errors (``/bench/fail``), a graceful stop 3 s later:
  the ``sentry.storm_suppressed`` lines.

``readonly`` and ``full`` need root and a tmpfs mount.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.throughput import Server
from mina.testing import SentryIngest

ROWS = ("readonly", "full", "sigkill", "slow", "storm")


def _get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
        return json.loads(answer.read())


def _ids(port: int, requests: int) -> list[str]:
    ids = []
    for _ in range(requests):
        body = _get(port, "/api/test-sentry-error")
        ids += [body["message_event_id"], body["error_event_id"]]
    return ids


def _lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for raw in path.read_bytes().splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out


def _env(outbox: Path, dsn: str, **extra: str) -> dict[str, str]:
    return {
        "SENTRY_DSN": dsn,
        "SENTRY_TRACES_SAMPLE_RATE": "0",
        "SENTRY_PROFILES_SAMPLE_RATE": "0",
        "SENTRY_ENVIRONMENT": "development",  # /api/test-sentry-error
        "MINA_SENTRY_OUTBOX": str(outbox),
        **extra,
    }


def _mount(target: Path, options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], check=True)


def _wait(predicate: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.1)


def _counted(ingest: SentryIngest) -> Counter[str]:
    counts: Counter[str] = Counter()
    for item in ingest.items("client_report"):
        for lost in item.json["discarded_events"]:
            counts[f"{lost['category']}:{lost['reason']}"] += lost["quantity"]
    return counts


def _outbox_lines(lines: list[dict[str, Any]]) -> Counter[str]:
    return Counter(
        line["event"]
        for line in lines
        if str(line.get("event", "")).startswith(("sentry.outbox", "sentry.events"))
    )


def disk_row(kind: str, work: Path) -> dict[str, Any]:
    """``readonly`` or ``full``: 400 events with Sentry healthy."""
    fs = work / "fs"
    _mount(fs, "size=64k")
    try:
        (fs / "box").mkdir()
        if kind == "full":
            fd = os.open(fs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while os.write(fd, b"\0" * 4096):  # until ENOSPC
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        with SentryIngest() as ingest:
            stdout = work / "stdout.jsonl"
            server = Server(kind, _env(fs / "box", ingest.dsn), 1, 4, stdout)
            try:
                server.wait()
                ids = _ids(server.port, 200)
                _wait(lambda: len({e["event_id"] for e in ingest.accepted_events}) >= 400, 20)
                health = _get(server.port, "/healthz")
            finally:
                server.stop()
            delivered = {e["event_id"] for e in ingest.accepted_events} & set(ids)
            tmp = fs / "box" / "tmp"
            return {
                "events": len(ids),
                "delivered": len(delivered),
                "copies": len(ingest.accepted_events),
                "counted_lost": dict(_counted(ingest)),
                "outbox_lines": dict(_outbox_lines(_lines(stdout))),
                "tmp_files_left": len(list(tmp.iterdir())) if tmp.is_dir() else 0,
                "healthz_outbox": health.get("outbox"),
            }
    finally:
        subprocess.run(["umount", "-l", str(fs)], check=False)


def _kill_all(server: Server) -> None:
    pids = [server.process.pid]
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    if children.exists():
        pids += [int(pid) for pid in children.read_text().split()]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=10)


def sigkill_row(work: Path) -> dict[str, Any]:
    """Acknowledged ids lost by a SIGKILL while Sentry refuses connections."""
    with SentryIngest() as ingest:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            refused = f"http://{ingest.public_key}@127.0.0.1:{sock.getsockname()[1]}/1"
        server = Server("sigkill", _env(work / "box", refused), 1, 4)
        server.wait()
        ids = _ids(server.port, 200)
        _kill_all(server)  # right after the last answer
        server.stderr.close()
        restart = Server("restart", _env(work / "box", ingest.dsn), 1, 4)
        try:
            restart.wait()
            _wait(lambda: len({e["event_id"] for e in ingest.accepted_events}) >= 400, 30)
        finally:
            restart.stop()
        arrived = Counter(e["event_id"] for e in ingest.accepted_events)
        return {
            "acknowledged": len(ids),
            "lost": len(set(ids) - set(arrived)),
            "twice": sum(1 for n in arrived.values() if n > 1),
        }


def slow_row(work: Path) -> dict[str, Any]:
    """Sentry answering after 8 s with a 5 s timeout: what arrives, and how often."""
    with SentryIngest(delay=8.0) as ingest:
        server = Server("slow", _env(work / "box", ingest.dsn, MINA_SENTRY_TIMEOUT="5"), 1, 4)
        try:
            server.wait()
            ids = set(_ids(server.port, 10))
            row: dict[str, Any] = {"events": len(ids)}
            for at in (12, 60):
                _wait(lambda: False, at - (12 if at == 60 else 0))
                got = Counter(e["event_id"] for e in ingest.accepted_events if e["event_id"] in ids)
                row[f"distinct_{at}s"] = len(got)
                row[f"copies_per_event_{at}s"] = round(sum(got.values()) / max(len(got), 1), 3)
        finally:
            ingest.stop()
            server.stop()
        return row


def storm_row(work: Path) -> dict[str, Any]:
    """1,000 identical logged errors, a graceful stop 3 s later."""
    with SentryIngest() as ingest:
        stdout = work / "stdout.jsonl"
        server = Server("storm", _env(work / "box", ingest.dsn), 1, 4, stdout)
        try:
            server.wait()
            for _ in range(1000):
                _get(server.port, "/bench/fail")
            time.sleep(3)
        finally:
            server.stop()
        storm = [line for line in _lines(stdout) if line.get("event") == "sentry.storm_suppressed"]
        return {
            "errors": 1000,
            "storm_lines": len(storm),
            "suppressed_in_lines": sum(line["suppressed"] for line in storm),
            "client_report_before_send": _counted(ingest).get("error:before_send", 0),
        }


def main(argv: list[str] | None = None) -> int:
    """Run the rows and print each as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.durability")
    parser.add_argument("--only", choices=ROWS)
    args = parser.parse_args(argv)
    for row in [args.only] if args.only else ROWS:
        with tempfile.TemporaryDirectory(prefix="mina-durability-") as tmp:
            work = Path(tmp)
            if row in ("readonly", "full"):
                result = disk_row(row, work)
            elif row == "sigkill":
                result = sigkill_row(work)
            elif row == "slow":
                result = slow_row(work)
            else:
                result = storm_row(work)
        print(json.dumps({"row": row, **result}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
