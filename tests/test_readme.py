"""The README works as written: every ``sh`` and ``python`` block in it is run.

Blocks come from README.md (all ``sh``/``python`` blocks but those marked
``<!-- not-run: reason -->``) and from docs/*.md (only those marked ``<!-- run -->``);
see `tests.markdown_blocks` for the markers.

- A ``python`` block runs as a script in a fresh interpreter, with ``SENTRY_DSN`` (and
  any DSN written in the block) pointing at a local ingest. It must exit 0; no secret
  written in the block may appear in its output, and every output line must be one the
  redactor leaves as it is; ``<!-- run: events=N -->`` (``transactions``, ``logs``) asks
  for at least N of them at the ingest.
- A ``sh`` block runs in bash (``-euo pipefail``). When it talks to ``localhost:5000``
  (or ``127.0.0.1:5000``), a real gunicorn serving Mina is started on a free loopback
  port and the block's port is rewritten. A ``curl`` command whose trailing comment
  starts with a status (``# 201, the meeting``) must get that status.

Both run in a directory that looks like a checkout after ``make``: the repository's
files linked, ``.venv`` the environment running the tests.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mina.redaction import Redactor
from mina.testing import SentryIngest

from .markdown_blocks import RUNNABLE, Block, blocks
from .support import ROOT, Server, require_system_tool, wait_http

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
TIMEOUT = 60  # seconds for one block
#: Fence languages that look runnable but are not run: a block must use sh or python.
LOOKALIKES = frozenset({"bash", "shell", "console", "zsh", "py", "python3", "pycon"})
#: A DSN written in a block is pointed at the local ingest: tests never reach Sentry itself.
_DSN = re.compile(r"\bhttps?://[\w-]+@[\w.-]+(?::\d+)?/\d+\b")
_SERVER = re.compile(r"\b(?:localhost|127\.0\.0\.1|0\.0\.0\.0):5000\b")
_STATUS_LINE = re.compile(r"^HTTP_STATUS (\d{3})$", re.MULTILINE)
_DOCUMENTED_STATUS = re.compile(r"#\s*(\d{3})\b")
#: curl writes each response's status to stderr, where the block's own output is not.
CURL_SHIM = "curl() { command curl --write-out '%{stderr}HTTP_STATUS %{http_code}\\n' \"$@\"; }\n"


#: Programs a block may run that the README's requirements (Python, make, git, curl) do not
#: bring, with their Debian package: a block using one skips without it, naming the package
#: (and fails in CI, which installs them).
SYSTEM_TOOLS = {"syslog-ng": "syslog-ng-core", "nginx": "nginx", "redis-server": "redis-server"}


def require_tools(source: str) -> None:
    """Skip, naming the package, unless every `SYSTEM_TOOLS` program *source* runs is
    installed. A program counts where a command starts: a line, or after ``|``, ``;``,
    ``&&``, ``$(``."""
    for tool, package in SYSTEM_TOOLS.items():
        if re.search(rf"(?:^|[|;&(])\s*{re.escape(tool)}(?:\s|$)", source, re.MULTILINE):
            require_system_tool(tool, package=package)


class SecretLeaked(AssertionError):
    """A block printed a secret it was given, or a line the redactor would change."""


def runnable() -> list[Block]:
    """The blocks this module runs."""
    found = [block for block in blocks(README) if block.marker != "not-run"]
    for doc in DOCS:
        found += [block for block in blocks(doc) if block.marker == "run"]
    return [block for block in found if block.lang in RUNNABLE]


def secrets_in(source: str, redactor: Redactor) -> set[str]:
    """The secrets written in *source*: what the redactor removes from its text, and the
    string values it redacts under their keyword (``api_key="..."``)."""
    found = set()
    redacted = redactor.redact_text(source)
    matcher = difflib.SequenceMatcher(None, source, redacted, autojunk=False)
    for tag, start, end, _, _ in matcher.get_opcodes():
        if tag in ("replace", "delete") and end - start >= 4:
            found.add(source[start:end])
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return found
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg and isinstance(node.value, ast.Constant):
            value = node.value.value
            if isinstance(value, str) and redactor.redact({node.arg: value}) != {node.arg: value}:
                found.add(value)
    return found


def assert_nothing_leaked(output: str, secrets: set[str], redactor: Redactor) -> None:
    """No secret in *output*, and every line of it a fixed point of the redactor."""
    shown = sorted(secret for secret in secrets if secret in output)
    if shown:
        raise SecretLeaked(f"printed in clear: {shown}\n{output[-2000:]}")
    changed = [line for line in output.splitlines() if redactor.redact_text(line) != line]
    if changed:
        raise SecretLeaked(f"lines the redactor would change: {changed[:3]}")


#: Checkout entries a block may read (``examples/...``, ``logging.yaml``); never state.
_NOT_LINKED = frozenset({"var", "build", "dist"})


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory that looks like a fresh checkout after ``make``: the repository's files
    (linked, not copied), ``.venv`` the environment running the tests, no ``var/``."""
    work = tmp_path / "work"
    work.mkdir()
    for entry in ROOT.iterdir():
        name = entry.name
        if not name.startswith(".") and name not in _NOT_LINKED and ".egg-info" not in name:
            (work / name).symlink_to(entry, target_is_directory=entry.is_dir())
    (work / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return work


@pytest.fixture
def server(tmp_path: Path, sentry_ingest: SentryIngest) -> Iterator[Callable[[], Server]]:
    """Start real gunicorn on demand (once), on the test's database; stopped afterwards."""
    started: list[Server] = []

    def start() -> Server:
        if not started:
            env = {"MINA_DATABASE": str(tmp_path / "mina.sqlite3"), "SENTRY_DSN": sentry_ingest.dsn}
            started.append(Server(env))
            wait_http(started[0].url + "/healthz")
        return started[0]

    yield start
    for running in started:
        if running.process.poll() is None:
            running.stop()


def run_python(block: Block, workdir: Path, ingest: SentryIngest) -> None:
    """Run a python block; check its exit, its output and what the ingest received."""
    redactor = Redactor()
    script = workdir / "snippet.py"
    script.write_text(_DSN.sub(ingest.dsn, block.source))
    env = {
        **os.environ,
        "SENTRY_DSN": ingest.dsn,
        "MINA_DATABASE": str(workdir / "mina.sqlite3"),
        "PYTHONUNBUFFERED": "1",
    }
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    output = done.stdout + done.stderr
    assert 0 == done.returncode, output[-3000:]
    assert_nothing_leaked(output, secrets_in(block.source, redactor), redactor)
    assert_received(block, ingest)


def assert_received(block: Block, ingest: SentryIngest) -> None:
    """At least the events, transactions and logs the block's marker promises."""
    received = {
        "events": len(ingest.events),
        "transactions": len(ingest.transactions),
        "logs": len(ingest.logs),
    }
    for kind, count in block.expect.items():
        assert received[kind] >= count, f"{kind}: wanted {count}, got {received}"


def documented_statuses(source: str) -> list[int | None]:
    """For each curl command (continuation lines joined), the status its comment states."""
    statuses: list[int | None] = []
    command = ""
    for line in source.splitlines():
        command += line
        if line.rstrip().endswith("\\"):
            continue
        if re.search(r"\bcurl\b", command):
            comment = command.split("#", 1)[1] if "#" in command else ""
            found = _DOCUMENTED_STATUS.search("#" + comment) if comment else None
            statuses.append(int(found[1]) if found else None)
        command = ""
    return statuses


def run_sh(
    block: Block,
    workdir: Path,
    server: Callable[[], Server],
    tmp_path: Path,
    ingest: SentryIngest,
) -> None:
    """Run a sh block, against a real server when it names one; check documented statuses
    and, once the server has stopped (and flushed), what the ingest received."""
    redactor = Redactor()
    require_tools(block.source)
    source = _DSN.sub(ingest.dsn, block.source)
    running = None
    if _SERVER.search(source):
        running = server()
        source = _SERVER.sub(f"127.0.0.1:{running.port}", source)
    env = {**os.environ, "MINA_DATABASE": str(tmp_path / "mina.sqlite3")}
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + CURL_SHIM + source],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert 0 == done.returncode, (done.stdout + done.stderr)[-3000:]
    expected = documented_statuses(block.source)
    actual = [int(code) for code in _STATUS_LINE.findall(done.stderr)]
    assert len(expected) == len(actual), f"curl commands {expected}, responses {actual}"
    assert [code for code in expected if code is not None] == [
        code for code, want in zip(actual, expected, strict=True) if want is not None
    ]
    if running is not None:
        lines, _ = running.stop()
        server_output = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
        assert_nothing_leaked(server_output, set(), redactor)
    assert_received(block, ingest)


@pytest.mark.parametrize("block", runnable(), ids=lambda block: block.id)
def test_block_runs_as_written(
    block: Block,
    workdir: Path,
    sentry_ingest: SentryIngest,
    server: Callable[[], Server],
    tmp_path: Path,
) -> None:
    if block.lang == "python":
        run_python(block, workdir, sentry_ingest)
    else:
        run_sh(block, workdir, server, tmp_path, sentry_ingest)


def test_the_readme_has_runnable_blocks() -> None:
    # A parser that found nothing would make every other test here vacuous.
    assert {"sh", "python"} <= {block.lang for block in runnable() if block.path == README}


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda path: path.name)
def test_no_block_hides_from_the_harness(path: Path) -> None:
    # A shell or Python block under another language name would silently go unrun.
    hidden = [
        f"{block.id} ({block.lang})"
        for block in blocks(path)
        if block.lang in LOOKALIKES and block.marker != "not-run"
    ]
    assert [] == hidden


# --- the harness itself can fail ----------------------------------------------------------

LEAKY = "sk-proj-4f9a2b7c1d8e3f6a5b0c9d2e7f1a4b8c"


def snippet(lang: str, source: str, **expect: int) -> Block:
    """A block as if it stood in the README."""
    return Block(README, 1, "test", 1, lang, source, expect=expect)


def test_a_block_printing_a_secret_fails(workdir: Path, sentry_ingest: SentryIngest) -> None:
    # structlog unconfigured: its console renderer prints the key in clear.
    block = snippet(
        "python", f'import structlog\nstructlog.get_logger().info("x", api_key="{LEAKY}")\n'
    )
    with pytest.raises(SecretLeaked, match="printed in clear"):
        run_python(block, workdir, sentry_ingest)


def test_promised_events_must_arrive(workdir: Path, sentry_ingest: SentryIngest) -> None:
    with pytest.raises(AssertionError, match="events: wanted 1"):
        run_python(snippet("python", "print('no event')\n", events=1), workdir, sentry_ingest)


def test_a_status_other_than_documented_fails(
    workdir: Path, server: Callable[[], Server], tmp_path: Path, sentry_ingest: SentryIngest
) -> None:
    block = snippet("sh", "curl -s localhost:5000/healthz   # 404, not found\n")
    with pytest.raises(AssertionError, match=r"\[404\] == \[200\]"):
        run_sh(block, workdir, server, tmp_path, sentry_ingest)


def test_a_block_needing_a_missing_program_skips_naming_its_package(
    workdir: Path,
    server: Callable[[], Server],
    tmp_path: Path,
    sentry_ingest: SentryIngest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A program no machine has stands for syslog-ng on a machine without it.
    monkeypatch.setitem(SYSTEM_TOOLS, "mina-no-such-collector", "mina-collector-core")
    block = snippet("sh", "echo start\nmina-no-such-collector --syntax-only -f x.conf\n")
    with pytest.raises(pytest.skip.Exception) as skipped:
        run_sh(block, workdir, server, tmp_path, sentry_ingest)
    assert (
        "requires system package mina-collector-core: mina-no-such-collector is not installed"
        " (Debian: apt-get install mina-collector-core; .ci/run installs it)"
    ) == skipped.value.msg


@pytest.mark.parametrize(
    ("source", "needs"),
    [
        ("syslog-ng --syntax-only -f x\n", True),
        ("cat x | syslog-ng -F\n", True),
        ("X=$(syslog-ng -V)\n", True),
        ("cp examples/syslog-ng/mina.conf /tmp/\n", False),
        ("echo syslog-ng\n", False),
    ],
)
def test_a_program_counts_where_a_command_starts(
    source: str, needs: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(SYSTEM_TOOLS, "syslog-ng", "mina-absent-package")
    monkeypatch.setattr("tests.support.system_tool", lambda tool: None)  # absent here
    skipped = False
    try:
        require_tools(source)
    except pytest.skip.Exception:
        skipped = True
    assert needs == skipped


def test_documented_statuses_follow_continuation_lines() -> None:
    source = "curl -s \\\n  localhost:5000/a   # 201, made\ncurl -s x\necho '# 500'\n"
    assert [201, None] == documented_statuses(source)


def test_markers_are_read_from_the_line_before_the_fence(tmp_path: Path) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text(
        "# Guide\n\n<!-- not-run: serves forever -->\n```sh\nmake run\n```\n"
        "\n<!-- run: events=2 logs=1 -->\n\n```python\nprint(1)\n```\n```sh\nls\n```\n"
    )
    found = [(b.id, b.lang, b.marker, b.reason, b.expect) for b in blocks(doc)]
    assert [
        ("guide.md:Guide#1", "sh", "not-run", "serves forever", {}),
        ("guide.md:Guide#2", "python", "run", "", {"events": 2, "logs": 1}),
        ("guide.md:Guide#3", "sh", None, "", {}),
    ] == found


@pytest.mark.parametrize(
    ("marker", "message"),
    [("<!-- not-run -->", "needs a reason"), ("<!-- run: events=x -->", "unknown run")],
)
def test_a_malformed_marker_names_its_line(tmp_path: Path, marker: str, message: str) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text(f"text\n{marker}\n```sh\nls\n```\n")
    with pytest.raises(ValueError, match=message):
        blocks(doc)


def test_a_written_dsn_reaches_the_local_ingest(workdir: Path, sentry_ingest: SentryIngest) -> None:
    block = snippet(
        "python",
        "import sentry_sdk\n"
        'sentry_sdk.init("https://examplePublicKey@o0.ingest.sentry.io/0")\n'
        'sentry_sdk.capture_message("hello")\n',
        events=1,
    )
    run_python(block, workdir, sentry_ingest)
    assert ["hello"] == [event["message"] for event in sentry_ingest.events]


# --- example lines match real ones ---------------------------------------------------------


def documented_line(event: str) -> dict[str, object]:
    """The README's example JSON line for *event* (a ``json`` block, possibly wrapped)."""
    for block in blocks(README):
        if block.lang == "json" and f'"event":"{event}"' in block.source:
            return dict(json.loads(" ".join(block.source.splitlines())))
    raise AssertionError(f"no example line for {event} in the README")


def test_the_documented_meeting_created_line_has_the_real_keys_in_order(
    mina_logging: Callable[..., Any], sentry_ingest: SentryIngest, tmp_path: Path
) -> None:
    from .support import create_app, make_user

    lines = mina_logging()
    app = create_app(
        {
            "SENTRY_DSN": sentry_ingest.dsn,
            "SENTRY_TRACES_SAMPLE_RATE": "1.0",
            "SENTRY_PROFILES_SAMPLE_RATE": "0",
            "MINA_DATABASE": str(tmp_path / "readme.sqlite3"),
        }
    )
    _, token = make_user(str(tmp_path / "readme.sqlite3"), "ada")
    app.test_client().post(
        "/api/meetings", json={"title": "Standup"}, headers={"Authorization": f"Bearer {token}"}
    )

    [real] = lines.events("meeting.created")
    documented = documented_line("meeting.created")
    assert list(documented) == list(real)
    assert ("meeting.created", "Standup", "/api/meetings") == (
        real["event"],
        real["title"],
        real["route"],
    )
