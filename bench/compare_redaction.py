"""The redactor's cost at another git revision and at this checkout, as ratios, in one run.

Run: ``.venv/bin/python bench/compare_redaction.py BASE [ROUNDS] [REPEATS]`` (BASE: any git
revision, e.g. ``main``). The ``mina`` package of BASE is exported to a temporary
directory; this checkout's ``bench/bench_redaction.py`` then runs against BASE and against
this checkout, alternately, REPEATS times each (ROUNDS rounds a run), each in a fresh
process, so machine noise falls on both sides alike. Prints, per case, the median
microseconds of each side, the difference and the ratio. Nothing is asserted.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "bench_redaction.py"
_CHILD = (
    "import json, runpy, sys; "
    "run = runpy.run_path(sys.argv[1])['run']; "
    "print(json.dumps(run(int(sys.argv[2]))))"
)


def export(revision: str, into: Path) -> Path:
    """Write *revision*'s ``mina`` package under *into*; return *into*."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "mina"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(tree: Path, rounds: int) -> dict[str, float]:
    """Median microseconds per case of one benchmark run with *tree*'s ``mina`` first."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(BENCH), str(rounds)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        timeout=1800,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main(argv: list[str]) -> None:
    """Compare BASE with this checkout; see the module's docstring."""
    base_rev = argv[0] if argv else "main"
    rounds = int(argv[1]) if len(argv) > 1 else 30
    repeats = int(argv[2]) if len(argv) > 2 else 3
    with tempfile.TemporaryDirectory(prefix="mina-bench-") as tmp:
        base = export(base_rev, Path(tmp))
        runs: dict[str, list[dict[str, float]]] = {"base": [], "head": []}
        for _ in range(repeats):
            runs["base"].append(measure(base, rounds))
            runs["head"].append(measure(ROOT, rounds))
    cases = [name for name in runs["head"][0] if name in runs["base"][0]]
    width = max(map(len, cases))
    print(f"{'case':<{width}}  {base_rev + ' us':>12}  {'this us':>12}  {'diff us':>9}  ratio")
    for name in cases:
        before = statistics.median(r[name] for r in runs["base"])
        after = statistics.median(r[name] for r in runs["head"])
        ratio = after / before if before else float("nan")
        print(
            f"{name:<{width}}  {before:>12.2f}  {after:>12.2f}  {after - before:>9.2f}  {ratio:.2f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
