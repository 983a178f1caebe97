"""The fenced code blocks of a Markdown file, with the marker comment that precedes each.

A marker is an HTML comment on the last non-blank line before the opening fence:

- ``<!-- not-run: reason -->``: the block is not exercised (say ``make run``, which serves
  until stopped); the reason is required.
- ``<!-- run -->``, optionally with expectations: ``<!-- run: events=1 -->`` (at least that
  many Sentry events reach the ingest), ``transactions=N``, ``logs=N`` (Sentry Logs).
  In the README every ``sh``/``python`` block runs unless marked ``not-run``; in other
  documents only the blocks marked ``run`` do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RUNNABLE", "Block", "blocks"]

#: Fence languages the harness knows how to run.
RUNNABLE = frozenset({"sh", "python"})

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not-run|run)\s*(?::\s*(?P<args>.*?))?\s*-->\s*$")
_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$")
_EXPECT = re.compile(r"^(?P<key>events|transactions|logs)=(?P<count>\d+)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, what it says, and how it is marked."""

    path: Path
    #: 1-based line of the opening fence.
    line: int
    #: The heading the block sits under ("" before the first heading).
    section: str
    #: Its position among the blocks of that section, from 1.
    index: int
    lang: str
    source: str
    #: ``"run"``, ``"not-run"`` or ``None`` (no marker).
    marker: str | None = None
    #: The reason given with ``not-run``.
    reason: str = ""
    #: Counts asked for with ``run: events=N ...``.
    expect: dict[str, int] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """A stable name: the file, the section and the position (``README.md:Two
        commands#1``), unaffected by edits in other sections."""
        return f"{self.path.name}:{self.section}#{self.index}"


def _marker(line: str, where: str) -> tuple[str | None, str, dict[str, int]]:
    match = _MARKER.match(line)
    if match is None:
        return None, "", {}
    kind, args = match["kind"], (match["args"] or "").strip()
    if kind == "not-run":
        if not args:
            raise ValueError(f"{where}: not-run needs a reason: <!-- not-run: why -->")
        return kind, args, {}
    expect = {}
    for word in args.split():
        found = _EXPECT.match(word)
        if found is None:
            raise ValueError(f"{where}: unknown run expectation {word!r}")
        expect[found["key"]] = int(found["count"])
    return kind, "", expect


def blocks(path: Path) -> list[Block]:
    """Every fenced block of *path*, in order.

    :raises ValueError: for an unclosed fence or a malformed marker, naming the line.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    section = ""
    counts: dict[str, int] = {}
    previous = ""  # the last non-blank line outside a block
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence is None:
            heading = _HEADING.match(line)
            if heading is not None:
                section = heading["title"]
            if line.strip():
                previous = line
            i += 1
            continue
        opening, closer = i, fence["fence"]
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(closer):
            body.append(lines[i][len(fence["indent"]) :])
            i += 1
        if i == len(lines):
            raise ValueError(f"{path}:{opening + 1}: fence never closed")
        kind, reason, expect = _marker(previous, f"{path}:{opening}")
        counts[section] = counts.get(section, 0) + 1
        found.append(
            Block(
                path=path,
                line=opening + 1,
                section=section,
                index=counts[section],
                lang=fence["lang"].lower(),
                source="\n".join(body) + "\n",
                marker=kind,
                reason=reason,
                expect=expect,
            )
        )
        previous = ""
        i += 1
    return found
