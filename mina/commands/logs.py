"""``mina logs``: Mina's JSON lines, for people.

Reads JSON lines (files, or stdin) and prints each with the renderer ``LOG_FORMAT=console``
uses (`mina.observability.console.ConsoleRenderer`): level, time, event, the call's own
keys, then the context; exceptions multi-line. Lines that are not JSON objects (a stray
traceback, gunicorn before the pipeline started) are written through byte for byte.
``--follow`` keeps reading a growing file, like ``tail -f``, and survives rotation.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Final

import click
import orjson

from mina.observability.console import LEVEL_NUMBERS, ConsoleRenderer

__all__ = ["LineFilter", "logs", "parse_line"]

#: How long ``--follow`` sleeps when no file grew.
POLL_S: Final = 0.2
_STDIN: Final = Path("-")


def parse_line(line: bytes) -> dict[str, Any] | None:
    """The JSON object *line* holds, or None when it is not one (then it passes through)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:  # orjson refuses integers past 64 bits, which are still JSON
            value = json.loads(line)
        except (ValueError, RecursionError):
            return None
    return value if isinstance(value, dict) else None


class LineFilter:
    """Which parsed lines to show: ``--level``, ``--request-id``, ``--meeting``, ``--user``.

    Ids match by prefix (the console shows their first 8 digits); ``--user`` matches
    ``user_id`` or ``username``. A line of unknown level is kept by ``--level``.
    """

    __slots__ = ("_level", "_meeting", "_request_id", "_user")

    def __init__(
        self,
        level: str | None = None,
        request_id: str | None = None,
        meeting: str | None = None,
        user: str | None = None,
    ) -> None:
        self._level = LEVEL_NUMBERS[level.lower()] if level else None
        self._request_id = request_id
        self._meeting = meeting
        self._user = user

    def __call__(self, event: dict[str, Any]) -> bool:
        """Whether *event* passes every filter given."""
        if self._level is not None:
            number = LEVEL_NUMBERS.get(str(event.get("level", "")).lower())
            if number is not None and number < self._level:
                return False
        if self._request_id and not str(event.get("request_id", "")).startswith(self._request_id):
            return False
        if self._meeting and not str(event.get("meeting_id", "")).startswith(self._meeting):
            return False
        return not self._user or self._user in (
            str(event.get("user_id", "")),
            str(event.get("username", "")),
        )


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    yield from stream


def _follow(path: Path, stop: Callable[[], bool]) -> Iterator[bytes | None]:
    """Yield *path*'s lines, then new ones as they are written; None when idle.

    A file replaced (rotation: another inode) is reopened from its start, a truncated one
    read again from its start. A last line without newline waits for the rest.
    """
    stream = path.open("rb")
    pending = b""
    try:
        while not stop():
            chunk = stream.read(65536)
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield line + b"\n"
                continue
            try:
                current = path.stat()
            except FileNotFoundError:  # between rotation and the new file: wait
                current = None
            if current is not None and current.st_ino != os.fstat(stream.fileno()).st_ino:
                stream.close()
                stream = path.open("rb")
                pending = b""
                continue
            if current is not None and current.st_size < stream.tell():
                stream.seek(0)
                pending = b""
                continue
            yield None
    finally:
        stream.close()


def _interleave(paths: list[Path]) -> Iterator[bytes]:
    followers = [_follow(path, lambda: False) for path in paths]
    while True:
        idle = True
        for follower in followers:
            for line in follower:
                if line is None:
                    break
                idle = False
                yield line
        if idle:
            time.sleep(POLL_S)


def _sources(files: tuple[Path, ...], follow: bool) -> Iterable[bytes]:
    stdin = sys.stdin.buffer
    paths = list(files) or [_STDIN]
    if follow and _STDIN not in paths:
        return _interleave(paths)

    def read() -> Iterator[bytes]:
        for path in paths:
            if path == _STDIN:
                yield from _lines(stdin)
            else:
                with path.open("rb") as stream:
                    yield from _lines(stream)

    return read()


@click.command("logs")
@click.argument(
    "files",
    nargs=-1,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
)
@click.option("--follow", "-f", is_flag=True, help="Keep reading the files as they grow.")
@click.option(
    "--level",
    type=click.Choice(list(LEVEL_NUMBERS), case_sensitive=False),
    help="Only lines at this level or above.",
)
@click.option("--request-id", metavar="ID", help="Only this request's lines (id or prefix).")
@click.option("--meeting", metavar="ID", help="Only this meeting's lines (id or prefix).")
@click.option("--user", metavar="ID|NAME", help="Only this user's lines (user id or username).")
@click.option("--color/--no-color", default=None, help="Colours [default: only on a terminal].")
@click.option(
    "--width",
    type=click.IntRange(min=0),
    default=None,
    help="Wrap at this many columns, 0 never [default: the terminal's, else 0].",
)
def logs(
    files: tuple[Path, ...],
    follow: bool,
    level: str | None,
    request_id: str | None,
    meeting: str | None,
    user: str | None,
    color: bool | None,
    width: int | None,
) -> None:
    """Print Mina's JSON lines from FILES (default: stdin) for people.

    Level, time, event, the call's keys, then the context, as LOG_FORMAT=console shows
    them; exceptions multi-line. Lines that are not JSON objects pass through untouched.

    \b
    Examples:
      mina serve | mina logs
      mina logs --follow mina.log --level warning
      mina logs mina.log --request-id 5f0c1a2b
    """
    out = sys.stdout.buffer
    terminal = sys.stdout.isatty()
    if width is None:
        width = shutil.get_terminal_size().columns if terminal else 0
    renderer = ConsoleRenderer(colors=terminal if color is None else color, width=width)
    keep = LineFilter(level, request_id, meeting, user)
    try:
        for line in _sources(files, follow):
            event = parse_line(line)
            if event is None:
                out.write(line)
            elif keep(event):
                out.write(renderer.render(event).encode("utf-8", "backslashreplace") + b"\n")
            else:
                continue
            out.flush()
    except KeyboardInterrupt:  # Ctrl-C ends --follow: the normal way out
        pass
    except BrokenPipeError:  # `mina logs | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
