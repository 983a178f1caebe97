"""Each candidate's installed weight: ``python -m bench.queue.deps``.

Walks the requirements of each candidate (with the extras Mina would install) through the
installed distributions' metadata and sums the files their RECORDs list. Packages the
venv already has for Mina (sentry-sdk, structlog, ...) are counted too when required,
so the number is what the candidate needs, not what it adds to this venv.
"""

from __future__ import annotations

import importlib.metadata as md
import re

from packaging.requirements import Requirement

CANDIDATES = {
    "huey (SQLite + Redis)": ["huey", "redis"],
    "celery[redis,sqlalchemy]": ["celery[redis,sqlalchemy]"],
    "dramatiq[redis]": ["dramatiq[redis]"],
    "dramatiq-sqlite": ["dramatiq-sqlite"],
    "rq": ["rq"],
}


def _closure(roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        if name in seen and not req.extras:
            continue
        seen.add(name)
        for raw in dist.requires or []:
            sub = Requirement(raw)
            if sub.marker is None or any(
                sub.marker.evaluate({"extra": extra}) for extra in req.extras or {""}
            ):
                todo.append(Requirement(str(sub).split(";")[0]))
    return seen


def _size(name: str) -> int:
    return sum(f.size or 0 for f in md.distribution(name).files or [])


def main() -> None:
    """Print each candidate's distributions and their installed size."""
    for label, roots in CANDIDATES.items():
        names = sorted(_closure(roots))
        mib = sum(_size(n) for n in names) / 2**20
        print(f"{label}: {len(names)} distributions, {mib:.1f} MiB: {', '.join(names)}")


if __name__ == "__main__":
    main()
