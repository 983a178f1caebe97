"""Requests while Sentry is healthy, hung or off: latency, throughput, events delivered.

``python -m bench.outbox [--seconds 10] [--clients 8] [--json out.json]`` (``make
bench-outbox``). For each situation a fresh gunicorn (2 workers x 4 threads, stdout to a
file whose every line is parsed afterwards) serves ``mina:create_app()`` on 127.0.0.1
with its own outbox, and Python
client threads (one keep-alive connection each) send requests for a fixed time: nine in
ten ``GET /healthz``, one in ten ``GET /api/test-sentry-error`` (two events captured,
their ids in the answer). Situations:

- **off**: no DSN, ``MINA_SENTRY_OUTBOX=off``: no Sentry client at all, the floor.
- **sdk healthy** / **sdk hung**: ``MINA_SENTRY_OUTBOX=off``, the SDK's own transport
  (what Mina had before the outbox), to a local `mina.testing.SentryIngest` answering at
  once / accepting connections and never answering.
- **outbox healthy** / **outbox hung**: the same with the outbox transport.

After a hung run the ingest answers again and the table says how many events then
arrived.

"sent" is the events the app captured (ids from the answers); "received" is the distinct
events the ingest accepted (2xx), during the run and by the end of a recovery wait.

Then the bound of a capture on the request thread: `OutboxTransport.capture_envelope` of a
typical error envelope (serialize, write, fsync, rename) timed in-process, with its sender
stuck on a hung Sentry.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.throughput import Server
from mina.testing import SentryIngest

_ROUTES = ("/healthz",) * 9 + ("/api/test-sentry-error",)


def load(port: int, seconds: float, clients: int) -> dict[str, Any]:
    """GET the routes from *clients* keep-alive connections for *seconds*."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    sent: list[list[str]] = [[] for _ in range(clients)]
    errors = [0]
    gate = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        clock = time.perf_counter
        gate.wait()
        n = index
        while clock() < deadline[0]:
            path = _ROUTES[n % len(_ROUTES)]
            n += 1
            t0 = clock()
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                errors[0] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            latencies[index].append(clock() - t0)
            if response.status != 200:
                errors[0] += 1
            elif path != "/healthz":
                answer = json.loads(body)
                sent[index] += [
                    i for i in (answer["message_event_id"], answer["error_event_id"]) if i
                ]
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds
    gate.wait()
    for thread in threads:
        thread.join()
    done = sorted(x for chunk in latencies for x in chunk)
    return {
        "requests": len(done),
        "rps": len(done) / seconds,
        "p50_ms": statistics.median(done) * 1000,
        "p99_ms": done[min(len(done) - 1, int(len(done) * 0.99))] * 1000,
        "errors": errors[0],
        "sent_ids": [i for chunk in sent for i in chunk],
    }


#: name: (a DSN, the outbox, Sentry hung)
SITUATIONS: dict[str, tuple[bool, bool, bool]] = {
    "off": (False, False, False),
    "sdk healthy": (True, False, False),
    "sdk hung": (True, False, True),
    "outbox healthy": (True, True, False),
    "outbox hung": (True, True, True),
}


def situation(
    name: str, seconds: float, clients: int, recover_s: float, progress: Any
) -> dict[str, Any]:
    """Run one of `SITUATIONS`; return its row."""
    dsn, outbox, hung = SITUATIONS[name]
    progress(f"outbox bench: {name} ...")
    with SentryIngest() as ingest, tempfile.TemporaryDirectory() as tmp:
        env = {
            "SENTRY_TRACES_SAMPLE_RATE": "0",
            "SENTRY_PROFILES_SAMPLE_RATE": "0",
            "SENTRY_ENVIRONMENT": "development",  # /api/test-sentry-error
            "MINA_SENTRY_OUTBOX": str(Path(tmp) / "outbox") if outbox else "off",
        }
        if dsn:
            env["SENTRY_DSN"] = ingest.dsn
        stdout = Path(tmp) / "stdout.jsonl"
        server = Server(name, env, workers=2, threads=4, stdout=stdout)
        try:
            server.wait()
            load(server.port, 1.0, clients)  # warm-up: imports, first requests
            ingest.clear()
            if hung:
                ingest.respond_with(hang=True)
            row = load(server.port, seconds, clients)
            sent = set(row.pop("sent_ids"))

            def received() -> int:
                return len({e["event_id"] for e in ingest.accepted_events} & sent)

            row["received_during"] = received()
            if hung:
                ingest.respond_with()
            if dsn:
                ingest.wait(lambda _: received() >= len(sent), timeout=recover_s)
            row["received"] = received()
            row["sent"] = len(sent)
        finally:
            server.stop()
        row["lines"], row["parsed"] = _lines(stdout)
    return row


def _lines(path: Path) -> tuple[int, int]:
    """Lines the server wrote to stdout, and how many of them are one JSON object each."""
    written = parsed = 0
    for line in path.read_bytes().splitlines():
        written += 1
        with contextlib.suppress(ValueError):  # not JSON: written, not parsed
            parsed += isinstance(json.loads(line), dict)
    return written, parsed


def capture_bound(captures: int = 2000) -> dict[str, float]:
    """Time `OutboxTransport.capture_envelope` while its sender hangs on Sentry."""
    import sentry_sdk
    from sentry_sdk.envelope import Envelope

    from mina.logging_config import configure_logging
    from mina.observability.sentry.outbox import Outbox
    from mina.observability.sentry.transport import OutboxTransport, sdk_options
    from mina.settings import Settings

    # The hung request ends when the ingest answers again: keep its line off the table.
    configure_logging(Settings(log_level=logging.CRITICAL, sentry_outbox=None), force=True)

    with SentryIngest() as ingest, tempfile.TemporaryDirectory() as tmp:
        ingest.respond_with(hang=True)
        transport = OutboxTransport(
            sdk_options(dsn=ingest.dsn),
            Outbox(Path(tmp), captures + 10, 10**9),
            timeout=30.0,
            retry_max=60.0,
        )
        try:
            raise RuntimeError("a typical error, with its traceback")
        except RuntimeError:
            event, _ = sentry_sdk.utils.event_from_exception(sys.exc_info())
        event["extra"] = {"detail": "x" * 3000}  # about 4 KiB, like a request's error
        envelope = Envelope()
        envelope.add_event(event)
        timings = []
        for _ in range(captures):
            t0 = time.perf_counter()
            transport.capture_envelope(envelope)
            timings.append(time.perf_counter() - t0)
        transport.kill()
        ingest.respond_with()
    timings.sort()
    return {
        "captures": captures,
        "bytes": len(envelope.serialize()),
        "p50_us": statistics.median(timings) * 1e6,
        "p99_us": timings[int(len(timings) * 0.99)] * 1e6,
        "max_us": timings[-1] * 1e6,
    }


def combine(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from several runs: medians of rates and latencies, sums of counts."""
    out: dict[str, Any] = {}
    for key in ("rps", "p50_ms", "p99_ms"):
        out[key] = statistics.median(row[key] for row in rows)
    for key in ("requests", "errors", "sent", "received_during", "received", "lines", "parsed"):
        out[key] = sum(row[key] for row in rows)
    return out


def table(results: dict[str, Any]) -> str:
    """The one table: a row per situation, then the capture bound."""
    rows = [
        (
            "sentry",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "events sent",
            "received (run)",
            "received (end)",
            "lines written",
            "lines parsed",
        )
    ]
    for name, r in results["situations"].items():
        rows.append(
            (
                name,
                f"{r['rps']:.0f}",
                f"{r['p50_ms']:.2f}",
                f"{r['p99_ms']:.2f}",
                str(r["errors"]),
                str(r["sent"]),
                str(r["received_during"]),
                str(r["received"]),
                str(r["lines"]),
                str(r["parsed"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    c = results["capture"]
    lines += [
        "",
        f"capture on the request thread ({c['bytes']} B error envelope, sender hung, "
        f"{c['captures']} captures): p50 {c['p50_us']:.0f} us, p99 {c['p99_us']:.0f} us, "
        f"max {c['max_us']:.0f} us",
        f"load: {results['clients']} keep-alive clients, {results['seconds']:g} s per "
        f"situation x {results['rounds']} interleaved round(s) (medians; counts summed), "
        "gunicorn 2 workers x 4 threads, 1 in 10 requests captures 2 events",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.outbox", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="load per situation")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--recover", type=float, default=30.0, help="seconds to wait for delivery")
    parser.add_argument("--json", default=None)
    parser.add_argument("--only", default=None, help="situations whose name contains this")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each, interleaved")
    args = parser.parse_args(argv)

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results: dict[str, Any] = {"seconds": args.seconds, "clients": args.clients}
    names = [name for name in SITUATIONS if args.only is None or args.only in name]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for index in range(args.rounds):  # interleaved, order reversed every other round
        for name in names if index % 2 == 0 else names[::-1]:
            runs[name].append(situation(name, args.seconds, args.clients, args.recover, progress))
    results["rounds"] = args.rounds
    results["situations"] = {name: combine(rows) for name, rows in runs.items()}
    progress("outbox bench: capture bound ...")
    results["capture"] = capture_bound()
    print(table(results))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
