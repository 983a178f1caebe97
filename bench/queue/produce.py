"""Enqueue jobs for one candidate, in a process of its own (the candidates' global state,
and anything they patch, never meet): ``python -m bench.queue.produce CANDIDATE N WORK_MS
SPACING_MS PREFIX``.
"""

from __future__ import annotations

import importlib
import sys
import time


def main() -> None:
    """Enqueue ``N`` jobs named ``PREFIX-i``, ``SPACING_MS`` apart."""
    candidate, n, work_ms, spacing_ms, prefix = sys.argv[1:6]
    app = importlib.import_module(f"bench.queue.{candidate}_app")
    for i in range(int(n)):
        app.enqueue(f"{prefix}-{i}", time.time(), float(work_ms))
        if float(spacing_ms):
            time.sleep(float(spacing_ms) / 1000)


if __name__ == "__main__":
    main()
