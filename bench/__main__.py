"""``python -m bench``: Mina's logging benchmarks, one table and one JSON file.

::

    python -m bench                    # everything, default rounds
    python -m bench --quick            # fewer rounds and requests: a smoke run
    python -m bench --only mina        # per-call cases whose name contains "mina" (+ floor)
    python -m bench --only throughput  # only the request benchmark
    python -m bench --json out.json    # default bench/results/latest.json

Per-call cases: `bench.calls` (how they are isolated and interleaved is explained there).
Request throughput: `bench.throughput`, run in a child process so the Sentry clients the
per-call cases create (and the integrations they patch into ``http.client``) never touch
the load generator. The redactor benchmark of ``bench/bench_redaction.py`` runs too when
that module exists. Every number is also written as JSON, so runs can be compared.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import calls

ROOT = Path(__file__).resolve().parent.parent

#: Targets, as ratios: case -> (bound, "max" or "min").
TARGETS: dict[str, tuple[float, str]] = {
    "mina.info": (4.0, "max"),
    "mina.debug": (0.2, "max"),
    "mina.error.full": (150.0, "max"),
    "throughput": (0.85, "min"),
}


def machine() -> dict[str, Any]:
    """Where the numbers came from."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _throughput(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        path = tmp.name
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.throughput",
                "--rounds",
                str(args.throughput_rounds),
                "--requests",
                str(args.requests),
                "--json",
                path,
            ],
            cwd=ROOT,
            check=True,
        )
        return dict(json.loads(Path(path).read_text()))
    finally:
        os.unlink(path)


def _redaction(rounds: int) -> dict[str, float] | None:
    try:
        module = importlib.import_module("bench.bench_redaction")
    except ImportError:
        return None
    run = getattr(module, "run", None)
    if not callable(run):
        return None
    return {str(k): float(v) for k, v in run(rounds).items()}


def _verdict(name: str, value: float) -> str:
    if name not in TARGETS:
        return ""
    bound, kind = TARGETS[name]
    ok = value <= bound if kind == "max" else value >= bound
    sign = "<=" if kind == "max" else ">="
    return f"{'met' if ok else 'MISSED'} ({sign} {bound:g})"


def table(results: dict[str, Any]) -> str:
    """Render *results* as the one table ``make bench`` prints."""
    rows = [("case", "median us", "p25 us", "p75 us", "x floor", "target")]
    for name, s in results.get("calls", {}).items():
        rows.append(
            (
                f"{name}  {s['label']}",
                f"{s['median_us']:.2f}",
                f"{s['p25_us']:.2f}",
                f"{s['p75_us']:.2f}",
                f"{s['ratio']:.2f}",
                _verdict(name, s["ratio"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    tp = results.get("throughput")
    if tp:
        lines += [
            "",
            f"request throughput (gunicorn, {tp['workers']} worker x {tp['threads']} threads, "
            f"{tp['concurrency']} keep-alive clients, {tp['requests_per_burst']} requests x "
            f"{tp['rounds']} rounds per side, interleaved):",
            f"  pipeline on : {tp['on']['rps']:8.0f} req/s   p50 {tp['on']['p50_ms']:.2f} ms"
            f"   p99 {tp['on']['p99_ms']:.2f} ms",
            f"  pipeline off: {tp['off']['rps']:8.0f} req/s   p50 {tp['off']['p50_ms']:.2f} ms"
            f"   p99 {tp['off']['p99_ms']:.2f} ms",
            f"  on/off throughput ratio: {tp['ratio']:.2f}  {_verdict('throughput', tp['ratio'])}"
            + (f"  ({tp['errors']} errors)" if tp["errors"] else ""),
        ]
    red = results.get("bench_redaction")
    if red:
        lines += ["", "bench/bench_redaction.py (median us per call, its own rounds):"]
        lines += [f"  {k}: {v:.3f}" for k, v in red.items()]
    m = results["machine"]
    lines += [
        "",
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, {m['platform']}",
    ]
    return "\n".join(lines)


#: A local Sentry ingest serving until its stdin closes; prints its DSN first.
_INGEST = """
import sys
from mina.testing import SentryIngest
with SentryIngest() as ingest:
    print(ingest.dsn, flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def ingest_process() -> Iterator[str]:
    """Run a `SentryIngest` in a child process and yield its DSN.

    In a thread of the benchmark's own process, the ingest's parsing of each envelope
    would compete for the GIL with the next timed call; a real Sentry is elsewhere.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", _INGEST], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
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
            child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="per-call rounds (default 15)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and requests")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "latest.json"))
    parser.add_argument("--only", default=None, help="cases whose name contains this")
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 15)
    args.throughput_rounds = 2 if args.quick else 6
    args.requests = 400 if args.quick else 1500

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results: dict[str, Any] = {"machine": machine(), "rounds": rounds}
    only = args.only
    if only is None or only == "throughput":
        progress("request throughput ...")
        results["throughput"] = _throughput(args)
    if only != "throughput":
        progress("per-call cases ...")
        with ingest_process() as dsn:
            results["calls"] = calls.run(
                rounds,
                only=only,
                dsn=dsn,
                single_calls=4 if args.quick else 8,
                target_ms=10.0 if args.quick else 20.0,
                progress=progress,
            )
        if only is None or "redact" in only:
            red = _redaction(rounds)
            if red is not None:
                results["bench_redaction"] = red
    print(table(results))
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
