"""``python -m bench.profile CASE``: where one per-call case spends its time, by function.

Sets the case up exactly as ``python -m bench`` does (`bench.calls`: Mina's pipeline and
Sentry as the app starts them, the ingest in a child process), runs it under cProfile
and prints the functions by own time (``--sort cumulative`` for the call tree's view).
Costly cases (``mina.error.*``) run one call at a time with the flush between calls
outside the profile, as the benchmark times them. Numbers under cProfile are inflated
about fourfold and unevenly (function calls cost more): read them as shares, and confirm
a change with ``python -m bench --only CASE``.

``--loop SECONDS`` runs the case for that long without cProfile, for a sampling profiler
from outside, which also sees the time spent in system calls (``pip install py-spy``)::

    python -m bench.profile mina.info --calls 20000
    python -m bench.profile mina.error.full --calls 300 --sort cumulative
    py-spy record --rate 1000 --format raw -o info.txt -- \
        python -m bench.profile mina.info --loop 15
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time

import structlog

from bench import calls
from bench.__main__ import ingest_process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("case", choices=[case.name for case in calls.CASES])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"])
    parser.add_argument("--lines", type=int, default=40, help="functions to print")
    parser.add_argument(
        "--loop", type=float, default=None, help="seconds to run the case unprofiled"
    )
    args = parser.parse_args(argv)

    profile = cProfile.Profile()
    with ingest_process() as dsn:
        out = calls._out()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**calls.CONTEXT)
        env = calls.Env(dsn=dsn, out=out, fd=out.fileno())
        [case] = [c for c in calls.CASES if c.name == args.case]
        calls._prepare([case], env)
        call = case.call
        assert call is not None
        with calls._entered(case, env):
            for _ in range(5):  # warm-up, as the benchmark does
                call()
                if case.between is not None:
                    case.between()
            if args.loop is not None:
                _loop(case, args.loop)
                return 0
            for _ in range(args.calls):
                if case.before is not None:
                    case.before()
                profile.enable()
                call()
                profile.disable()
                if case.between is not None:
                    case.between()
    stats = pstats.Stats(profile, stream=sys.stdout)
    stats.sort_stats(args.sort).print_stats(args.lines)
    return 0


def _loop(case: calls.Case, seconds: float) -> None:
    # Calls in batches of 1,000 (the costly cases one by one, flushed between) until
    # *seconds* have passed.
    call = case.call
    assert call is not None
    batch = 1 if case.between is not None else 1000
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(batch):
            if case.before is not None:
                case.before()
            call()
        if case.between is not None:
            case.between()


if __name__ == "__main__":
    raise SystemExit(main())
