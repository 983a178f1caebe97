"""Memory under load: a real gunicorn, a traffic mix, each worker's RSS every 1,000 requests.

::

    python -m bench.soak                      # the four soak scenarios, 4 minutes in all
    python -m bench.soak --minutes 10         # the same, 10 minutes in all (2.5 each)
    python -m bench.soak --scenario healthz-traced-1x4 --requests 2400
    python -m bench.soak --list               # every scenario and what it sends

Each scenario starts its own gunicorn (``bench.app:create_bench_app()``, Mina's app with
``/bench/work`` and ``/bench/raise``; stdout to ``/dev/null``, the database and the Sentry
outbox in a temporary directory) with Sentry pointed at a loopback `mina.testing.SentryIngest`
that is healthy, refuses connections (stopped) or hangs (reads, never answers). Four
keep-alive client threads send the scenario's mix in blocks of ``--every`` requests; after
each block the harness reads ``VmRSS`` from ``/proc/<pid>/status`` of every worker (the
children of the gunicorn master) and counts the envelopes waiting in the outbox (a
Sentry slower than the traffic fills it up to ``MINA_SENTRY_OUTBOX_MAX_EVENTS``, and the
sender's list of them is part of the heap). It prints, per scenario, one row per block and the
least-squares slope of RSS against requests, in KB per 1,000 requests, over the samples
after ``--warmup`` requests (imports, first-request caches, the SDK's buffers and the
allocator's arenas settle there). A flat service shows a slope near 0 that does not grow
with the run's length; a leak shows a slope as large as what each request leaves behind.

The mix of the soak scenarios (``mixed``), per 20 requests: 8 ``/bench/work`` (three INFO
lines), 4 ``/healthz``, 2 ``POST /api/meetings``, 2 ``GET /api/meetings/<id>``, 1 unknown
meeting (404), 2 ``/api/test-sentry-error`` (a message and a handled exception), 1
``/bench/raise`` (an unhandled exception, 500); every request traced
(``SENTRY_TRACES_SAMPLE_RATE=1.0``, profiling off). Two more mixes re-measure single kinds:
``healthz`` and ``errors`` (``/api/test-sentry-error`` and ``/bench/raise`` in turn).

Only 127.0.0.1 is used. Every wait is bounded (a request times out after 10 s, a scenario
ends at its time or request budget, whichever comes first, or once a worker's RSS passes
``--max-rss-mb``, 1024 by default, so a leak cannot take a shared machine's memory). The exit
status is non-zero
only when the harness itself fails (a server that does not start, no worker found), never
for a slope: memory is reported, not judged.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.throughput import Server
from mina import db
from mina.testing import SentryIngest

#: One request of a mix: method, path (``{meeting}`` is the harness's meeting), body.
Call = tuple[str, str, bytes | None]

MIXES: Final[dict[str, tuple[Call, ...]]] = {
    "mixed": (
        ("GET", "/bench/work", None),
        ("GET", "/healthz", None),
        ("POST", "/api/meetings", b'{"title": "Soak"}'),
        ("GET", "/bench/work", None),
        ("GET", "/api/test-sentry-error", None),
        ("GET", "/bench/work", None),
        ("GET", "/api/meetings/{meeting}", None),
        ("GET", "/healthz", None),
        ("GET", "/bench/work", None),
        ("GET", "/bench/raise", None),
        ("GET", "/bench/work", None),
        ("GET", "/healthz", None),
        ("POST", "/api/meetings", b'{"title": "Soak"}'),
        ("GET", "/bench/work", None),
        ("GET", "/api/test-sentry-error", None),
        ("GET", "/bench/work", None),
        ("GET", "/api/meetings/{meeting}", None),
        ("GET", "/healthz", None),
        ("GET", "/api/meetings/no-such-meeting", None),
        ("GET", "/bench/work", None),
    ),
    "healthz": (("GET", "/healthz", None),),
    "errors": (("GET", "/api/test-sentry-error", None), ("GET", "/bench/raise", None)),
}

#: The statuses a healthy run answers, per path (anything else is counted as unexpected).
EXPECTED: Final = {"/bench/raise": 500, "/api/meetings": 201, "/api/meetings/no-such-meeting": 404}


@dataclass(frozen=True)
class Scenario:
    """One gunicorn set-up, one Sentry state and one mix."""

    name: str
    workers: int
    threads: int
    #: ``healthy``, ``refused`` (the ingest stopped) or ``hung`` (reads, never answers).
    sentry: str
    mix: str
    #: Settings beyond the harness's own; the defaults apply to what is not named.
    env: dict[str, str] = field(default_factory=dict)
    #: Part of the default run (``python -m bench.soak`` without ``--scenario``).
    default: bool = True


_TRACED: Final = {"SENTRY_TRACES_SAMPLE_RATE": "1.0", "SENTRY_PROFILES_SAMPLE_RATE": "0"}

SCENARIOS: Final = (
    Scenario("mixed-1x4-healthy", 1, 4, "healthy", "mixed", _TRACED),
    Scenario("mixed-1x4-refused", 1, 4, "refused", "mixed", _TRACED),
    Scenario("mixed-2x4-healthy", 2, 4, "healthy", "mixed", _TRACED),
    Scenario("mixed-2x4-hung", 2, 4, "hung", "mixed", _TRACED),
    # The rows of the issue that found the leak: run them by name.
    Scenario("healthz-traced-1x4", 1, 4, "healthy", "healthz", _TRACED, default=False),
    Scenario("healthz-defaults-2x4", 2, 4, "healthy", "healthz", default=False),
    Scenario(
        "errors-2x4",
        2,
        4,
        "healthy",
        "errors",
        {"SENTRY_TRACES_SAMPLE_RATE": "0"},
        default=False,
    ),
)


def rss_kb(pid: int) -> int | None:
    """``VmRSS`` of *pid* in KiB, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def children(pid: int) -> list[int]:
    """The pids whose parent is *pid* (gunicorn's workers), from ``/proc/*/stat``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry))
    return sorted(found)


def backlog(outbox: Path) -> int:
    """Envelopes waiting in the outbox (``pending`` and ``sending``): a Sentry that does
    not keep up shows here, and the sender's list of them is part of the worker's heap."""
    count = 0
    for state in ("pending", "sending"):
        with contextlib.suppress(OSError), os.scandir(outbox / state) as entries:
            count += sum(1 for _ in entries)
    return count


def slope(points: list[tuple[int, int]]) -> float | None:
    """Least-squares slope of (requests, KiB) *points*, in KiB per 1,000 requests."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return sxy / sxx * 1000


class Load:
    """Keep-alive client threads sending a mix, one block of requests at a time."""

    def __init__(self, port: int, mix: tuple[Call, ...], token: str, meeting: str) -> None:
        self.port = port
        self.calls = [
            (method, path.format(meeting=meeting), body, EXPECTED.get(path, 200))
            for method, path, body in mix
        ]
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.sent = 0
        self.unexpected: dict[str, int] = {}

    def block(self, requests: int, concurrency: int, deadline: float) -> int:
        """Send *requests* requests over *concurrency* connections, until *deadline*
        (``time.monotonic``) at the latest; return how many were answered."""
        lock = threading.Lock()
        state = {"next": self.sent, "end": self.sent + requests, "done": 0}

        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                while time.monotonic() < deadline:
                    with lock:
                        index = state["next"]
                        if index >= state["end"]:
                            return
                        state["next"] = index + 1
                    method, path, body, expected = self.calls[index % len(self.calls)]
                    try:
                        conn.request(method, path, body=body, headers=self.headers)
                        response = conn.getresponse()
                        response.read()
                        status = str(response.status)
                    except (OSError, http.client.HTTPException) as exc:
                        status = type(exc).__name__
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    with lock:
                        state["done"] += 1
                        if status != str(expected):
                            key = f"{method} {path} -> {status}"
                            self.unexpected[key] = self.unexpected.get(key, 0) + 1
            finally:
                conn.close()

        threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0) + 15)
        self.sent = state["next"]
        return state["done"]


#: A healthy ingest in a process of its own (the load threads would otherwise slow it down
#: until it no longer keeps up): prints its DSN, forgets what it received every second,
#: serves until its stdin closes.
_INGEST = """
import select, sys
from mina.testing import SentryIngest
with SentryIngest() as ingest:
    print(ingest.dsn, flush=True)
    while not select.select([sys.stdin], [], [], 1.0)[0]:
        ingest.clear()
"""


@contextlib.contextmanager
def sentry(mode: str) -> Iterator[str]:
    """A loopback ingest in *mode* (``healthy``, ``refused``, ``hung``); yield its DSN."""
    if mode == "healthy":
        child = subprocess.Popen(
            [sys.executable, "-c", _INGEST],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            dsn = child.stdout.readline().strip()
            if not dsn:
                raise RuntimeError("the ingest process did not start")
            yield dsn
        finally:
            assert child.stdin is not None
            child.stdin.close()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=5)
        return
    ingest = SentryIngest().start()
    dsn = ingest.dsn
    try:
        if mode == "hung":
            ingest.respond_with(hang=True)  # reads each request, never answers
        else:
            ingest.stop()  # nothing listens on the DSN's port: connections are refused
        yield dsn
    finally:
        ingest.stop()


def run_scenario(
    scenario: Scenario,
    seconds: float,
    max_requests: int,
    every: int,
    warmup: int,
    concurrency: int,
    max_rss_kb: int,
    report: Callable[[str], None],
) -> dict[str, Any]:
    """Run one scenario; return its samples and slopes (and print them through *report*).

    It ends early, said so, once a worker's RSS passes *max_rss_kb*: a leak is shown long
    before then, and a shared machine keeps its memory."""
    with (
        tempfile.TemporaryDirectory(prefix="mina-soak-") as tmp,
        sentry(scenario.sentry) as dsn,
    ):
        database = str(Path(tmp) / "soak.sqlite3")
        outbox = Path(tmp) / "outbox"
        db.initialize(database)
        with contextlib.closing(db.connect(database)) as conn:
            user = db.create_user(conn, "soak", None)
            token = db.create_token(conn, user.id)
            meeting = db.create_meeting(conn, user.id, "Soak").id
        env = {
            "SENTRY_DSN": dsn,
            "SENTRY_ENVIRONMENT": "soak",
            "MINA_ENABLE_TEST_ROUTES": "1",
            "MINA_DATABASE": database,
            "MINA_SENTRY_OUTBOX": str(outbox),
            "PYTHONUNBUFFERED": "1",
            **scenario.env,
        }
        server = Server(scenario.name, env, scenario.workers, scenario.threads)
        try:
            server.wait()
            load = Load(server.port, MIXES[scenario.mix], token, meeting)
            samples: list[dict[str, Any]] = []
            start = time.monotonic()
            deadline = start + seconds

            def sample() -> bool:
                pids = children(server.process.pid)
                if len(pids) != scenario.workers:
                    # A worker still booting or being replaced: look again, briefly.
                    for _ in range(50):
                        time.sleep(0.1)
                        pids = children(server.process.pid)
                        if len(pids) == scenario.workers:
                            break
                if not pids:
                    raise RuntimeError(f"{scenario.name}: no gunicorn worker found")
                rss = {pid: rss_kb(pid) for pid in pids}
                waiting = backlog(outbox)
                samples.append({"requests": load.sent, "rss_kb": rss, "outbox": waiting})
                cells = "  ".join(f"{pid}: {kb / 1024:7.1f} MB" for pid, kb in rss.items() if kb)
                report(f"  {load.sent:>9,}  {waiting:>6,}  {cells}")
                return max((kb for kb in rss.values() if kb), default=0) < max_rss_kb

            report(
                f"{scenario.name}: {scenario.workers} worker(s) x {scenario.threads} threads,"
                f" Sentry {scenario.sentry}, mix {scenario.mix}"
                f" {json.dumps(scenario.env) if scenario.env else '(defaults)'}"
            )
            report("   requests  outbox  worker RSS")
            below = sample()
            while below and load.sent < max_requests and time.monotonic() < deadline:
                size = min(every, max_requests - load.sent)
                load.block(size, concurrency, deadline)
                below = sample()
            if not below:
                report(f"  stopped early: a worker passed {max_rss_kb // 1024} MB")
            elapsed = time.monotonic() - start
        finally:
            server.stop()
    return summarise(scenario, samples, warmup, elapsed, load.unexpected, report)


def summarise(
    scenario: Scenario,
    samples: list[dict[str, Any]],
    warmup: int,
    elapsed: float,
    unexpected: dict[str, int],
    report: Callable[[str], None],
) -> dict[str, Any]:
    """Slopes per worker and of the workers' sum, after the warm-up; print them."""
    total = samples[-1]["requests"]
    # Keep at least three samples for the fit, however short the run.
    usable = [s["requests"] for s in samples]
    start_at = min(warmup, usable[-3]) if len(usable) >= 3 else 0
    pids = sorted({pid for s in samples for pid in s["rss_kb"]})
    per_worker: dict[str, Any] = {}
    for pid in pids:
        points = [
            (s["requests"], s["rss_kb"][pid])
            for s in samples
            if s["requests"] >= start_at and s["rss_kb"].get(pid)
        ]
        series = [s["rss_kb"][pid] for s in samples if s["rss_kb"].get(pid)]
        per_worker[str(pid)] = {
            "first_kb": series[0] if series else None,
            "last_kb": series[-1] if series else None,
            "slope_kb_per_1000": slope(points),
            "samples": len(series),
        }
    whole = [
        (s["requests"], sum(v for v in s["rss_kb"].values() if v))
        for s in samples
        if s["requests"] >= start_at and set(s["rss_kb"]) == set(samples[-1]["rss_kb"])
    ]
    summed = slope(whole)
    rate = total / elapsed if elapsed else 0.0
    report(
        f"  {total:,} requests in {elapsed:.0f} s ({rate:.0f}/s); slope after"
        f" {start_at:,} requests, KB per 1,000 requests:"
    )
    for pid, worker in per_worker.items():
        first, last, fit = worker["first_kb"], worker["last_kb"], worker["slope_kb_per_1000"]
        report(
            f"    worker {pid}: {first / 1024:.1f} -> {last / 1024:.1f} MB,"
            f" slope {'n/a' if fit is None else f'{fit:+.1f}'}"
        )
    if len(per_worker) > 1:
        report(f"    all workers: slope {'n/a' if summed is None else f'{summed:+.1f}'}")
    if unexpected:
        report(f"  unexpected answers: {json.dumps(unexpected)}")
    report("")
    return {
        "scenario": scenario.name,
        "workers": scenario.workers,
        "threads": scenario.threads,
        "sentry": scenario.sentry,
        "mix": scenario.mix,
        "env": scenario.env,
        "requests": total,
        "seconds": elapsed,
        "warmup_requests": start_at,
        "per_worker": per_worker,
        "slope_kb_per_1000": summed,
        "unexpected": unexpected,
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.soak [--minutes M] [--requests N] [--scenario NAME ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--minutes", type=float, default=4.0, help="time for all scenarios, split evenly"
    )
    parser.add_argument(
        "--requests", type=int, default=10_000_000, help="most requests per scenario"
    )
    parser.add_argument("--scenario", action="append", help="a scenario by name (repeatable)")
    parser.add_argument("--every", type=int, default=1000, help="requests between samples")
    parser.add_argument("--warmup", type=int, default=3000, help="requests left out of the slope")
    parser.add_argument("--concurrency", type=int, default=4, help="keep-alive clients")
    parser.add_argument(
        "--max-rss-mb", type=int, default=1024, help="end a scenario once a worker passes this"
    )
    parser.add_argument("--json", default=None, help="also write the samples here")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    by_name = {s.name: s for s in SCENARIOS}
    if args.list:
        for s in SCENARIOS:
            mark = "default" if s.default else "by name"
            print(f"{s.name:22} {s.workers}x{s.threads} Sentry {s.sentry:8} {s.mix:8} {mark}")
        return 0
    unknown = [name for name in args.scenario or () if name not in by_name]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; --list shows them")
    chosen = (
        [by_name[n] for n in args.scenario]
        if args.scenario
        else [s for s in SCENARIOS if s.default]
    )
    seconds = args.minutes * 60 / len(chosen)

    def report(line: str) -> None:
        print(line, flush=True)

    results = [
        run_scenario(
            scenario,
            seconds,
            args.requests,
            max(args.every, 1),
            args.warmup,
            max(args.concurrency, 1),
            args.max_rss_mb * 1024,
            report,
        )
        for scenario in chosen
    ]
    report("scenario                 requests   RSS first -> last (MB, per worker)   slope KB/1k")
    for r in results:
        spans = ", ".join(
            f"{w['first_kb'] / 1024:.0f} -> {w['last_kb'] / 1024:.0f}"
            for w in r["per_worker"].values()
        )
        fits = [w["slope_kb_per_1000"] for w in r["per_worker"].values()]
        fit = r["slope_kb_per_1000"] if len(fits) > 1 else fits[0]
        report(
            f"{r['scenario']:22} {r['requests']:>10,}   {spans:34}"
            f"   {'n/a' if fit is None else f'{fit:+.1f}'}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _stop(signum: int, frame: Any) -> None:
    # SIGTERM (and SIGINT, which a background job ignores) unwind through the scenario's
    # `finally`, so the gunicorn it started is stopped too.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sys.exit(main())
