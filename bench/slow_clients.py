"""``python -m bench.slow_clients``: /healthz while clients stall mid-request.

A slow client (slowloris) opens a connection, sends half of its request head and waits.
Mina is served as documented (gunicorn, Mina's settings: 2 workers x 4 threads), either
directly (``direct``) or behind the shipped nginx configuration (``nginx``,
`examples/nginx/mina.conf`), with Mina's worker (``mina``, `mina.gunicorn_worker`) or
gunicorn's stock ``gthread`` worker (``gthread``, the setting before it). For each count
of stalled connections, those connections are opened first and kept open (one closed by
the server is opened again, as an attacker would), then ``--probes`` sequential
``GET /healthz`` probes are sent, each given ``--timeout`` seconds. One row per front,
worker and count::

    front, worker, stalled, probes answered within the timeout (share), p50 / max latency

Prints the table and, with ``--json PATH``, writes it.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.support import NGINX, Nginx, Server, wait_http

#: Half a request head: the line and one header, never the blank line that ends it.
HALF_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


class Stallers:
    """*count* connections to *port* that send `HALF_HEAD` and then nothing."""

    def __init__(self, port: int, count: int) -> None:
        self.port = port
        self.count = count
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(HALF_HEAD)
        sock.setblocking(False)
        return sock

    @staticmethod
    def _closed(sock: socket.socket) -> bool:
        try:
            return sock.recv(4096) == b""  # the server answered or hung up
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _run(self) -> None:
        socks = [self._open() for _ in range(self.count)]
        self._ready.set()
        while not self._stop.wait(0.2):
            for index, sock in enumerate(socks):
                if self._closed(sock):
                    sock.close()
                    socks[index] = self._open()
                    self.reopened += 1
        for sock in socks:
            sock.close()

    def __enter__(self) -> Stallers:
        self._ready = threading.Event()
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("could not open the stalled connections")
        time.sleep(0.5)  # let the server hand them to its threads
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def probe(url: str, timeout: float) -> float | None:
    """Seconds ``GET url`` took, or None when it did not answer 200 within *timeout*."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            if response.status != 200:
                return None
    except OSError:
        return None
    elapsed = time.perf_counter() - started
    return elapsed if elapsed <= timeout else None


def measure(front: str, worker: str, stalled: int, probes: int, timeout: float) -> dict[str, Any]:
    """Serve Mina with *front* and *worker*, stall *stalled* connections, probe /healthz."""
    with tempfile.TemporaryDirectory(prefix="mina-slow-") as scratch:
        directory = Path(scratch)
        env = {
            "MINA_DATABASE": str(directory / "mina.sqlite3"),
            "MINA_SENTRY_OUTBOX": str(directory / "outbox"),
            "SENTRY_ENVIRONMENT": "production",
            "LOG_FORMAT": "json",
        }
        if front == "nginx":
            env["MINA_TRUSTED_PROXIES"] = "1"
        options = ("--worker-class", "gthread") if worker == "gthread" else ()
        server = Server(env, options=options)
        nginx = Nginx(directory, server.port) if front == "nginx" else None
        port = nginx.port if nginx else server.port
        url = f"http://127.0.0.1:{port}/healthz"
        try:
            wait_http(url, timeout=30)
            with Stallers(port, stalled) as stallers:
                times = []
                for _ in range(probes):
                    took = probe(url, timeout)
                    if took is not None:
                        times.append(took)
                    time.sleep(0.1)
                reopened = stallers.reopened
        finally:
            if nginx:
                nginx.stop()
            server.stop()
    return {
        "front": front,
        "worker": worker,
        "stalled": stalled,
        "probes": probes,
        "timeout_s": timeout,
        "answered": len(times),
        "share": len(times) / probes,
        "p50_ms": round(statistics.median(times) * 1000, 1) if times else None,
        "max_ms": round(max(times) * 1000, 1) if times else None,
        "stalled_reopened": reopened,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the measurement; print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--front", action="append", choices=["direct", "nginx"])
    parser.add_argument("--worker", action="append", choices=["mina", "gthread"])
    parser.add_argument("--stalled", default="8,32", help="comma-separated counts")
    parser.add_argument("--probes", type=int, default=60)
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds per probe")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    fronts = args.front or (["direct", "nginx"] if NGINX else ["direct"])
    rows = [
        measure(front, worker, int(count), args.probes, args.timeout)
        for front in fronts
        for worker in args.worker or ["gthread", "mina"]
        for count in args.stalled.split(",")
    ]
    head = ("front", "worker", "stalled", "answered", "share", "p50 ms", "max ms")
    print("{:<8} {:<8} {:>7} {:>12} {:>6} {:>7} {:>7}".format(*head))
    for row in rows:
        print(
            f"{row['front']:<8} {row['worker']:<8} {row['stalled']:>7}"
            f" {row['answered']:>5}/{row['probes']:<6}"
            f" {row['share']:>6.0%} {row['p50_ms'] or '-':>7} {row['max_ms'] or '-':>7}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
