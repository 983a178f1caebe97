"""``mina outbox``: list, show, flush and purge, in process and as the installed script."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sentry_sdk
from click.testing import CliRunner

from mina import cli
from mina.logging_config import configure_logging
from mina.observability.sentry import init_sentry
from mina.settings import Settings
from mina.testing import SentryIngest


@pytest.fixture
def kept(tmp_path: Path) -> Iterator[list[str]]:
    """Three error events kept by the no-DSN outbox in $MINA_SENTRY_OUTBOX; their ids."""
    settings = Settings.from_env()
    init_sentry(settings, configure_logging(settings, force=True))
    ids = [
        sentry_sdk.capture_message(f"kept {i} password=hunter2", level="error") for i in range(3)
    ]
    sentry_sdk.get_client().close(timeout=2)
    sentry_sdk.get_global_scope().set_client(None)
    yield [id_ for id_ in ids if id_]
    logging.getLogger().handlers.clear()


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.main, ["outbox", *args])
    return result.exit_code, result.stdout


def test_list_shows_each_envelope_with_its_event_id(kept: list[str], tmp_path: Path) -> None:
    code, out = _run("list")

    rows = out.splitlines()
    assert 0 == code
    assert rows[0].split() == ["ID", "STATE", "BYTES", "AGE", "EVENT", "ID", "ITEMS"]
    assert kept == [row.split()[4] for row in rows[1:]]
    assert {("pending", "event")} == {(row.split()[1], row.split()[5]) for row in rows[1:]}


def test_show_prints_the_envelope_as_json_already_redacted(kept: list[str]) -> None:
    _, listing = _run("list")
    first_id = listing.splitlines()[1].split()[0]

    code, out = _run("show", first_id)

    document = json.loads(out)
    assert 0 == code
    assert (first_id, kept[0]) == (document["id"], document["headers"]["event_id"])
    [item] = document["items"]
    assert ("event", kept[0]) == (item["headers"]["type"], item["payload"]["event_id"])
    assert "hunter2" not in out


def test_show_an_unknown_id_fails_with_one_line(kept: list[str]) -> None:
    result = CliRunner().invoke(cli.main, ["outbox", "show", "e0000000000000000000-1-1"])

    assert 1 == result.exit_code
    assert "Error: no envelope 'e0000000000000000000-1-1' in" in result.stderr


def test_flush_sends_everything_and_exits_0(kept: list[str], sentry_ingest: SentryIngest) -> None:
    code, out = _run("flush", "--dsn", sentry_ingest.dsn)

    assert 0 == code
    assert out.startswith("sent 3, failed 0, left 0 in ")
    assert kept == [event["event_id"] for event in sentry_ingest.accepted_events]


def test_flush_to_an_unreachable_sentry_keeps_everything_and_exits_1(
    kept: list[str], sentry_ingest: SentryIngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTRY_DSN", sentry_ingest.dsn)
    sentry_ingest.stop()

    code, out = _run("flush")

    assert 1 == code
    assert out.startswith("sent 0, failed 1, left 3 in ")
    assert out.rstrip().endswith(": Sentry unreachable (NewConnectionError)")


def test_flush_without_a_dsn_says_how_to_give_one(kept: list[str]) -> None:
    result = CliRunner().invoke(cli.main, ["outbox", "flush"])

    assert (1, "Error: no DSN: pass --dsn or set SENTRY_DSN\n") == (
        result.exit_code,
        result.stderr,
    )


def test_purge_with_yes_empties_the_outbox(kept: list[str]) -> None:
    code, out = _run("purge", "--yes")

    assert 0 == code
    assert out.startswith("purged 3 envelope(s) from ")
    assert ["ID"] == [row.split()[0] for row in _run("list")[1].splitlines()]


def test_purge_without_yes_off_a_terminal_refuses_and_keeps_everything(kept: list[str]) -> None:
    result = CliRunner().invoke(cli.main, ["outbox", "purge"], input="y\n")

    assert (
        1,
        "Error: purge deletes events Sentry has not received: pass --yes"
        " (stdin is not a terminal to ask on)\n",
    ) == (result.exit_code, result.stderr)
    assert 4 == len(_run("list")[1].splitlines())


def _purge_on_a_terminal(answer: bytes) -> tuple[int, str]:
    """``mina outbox purge`` with a pseudo-terminal as stdin and stdout, answering *answer*."""
    import pty
    import select

    parent, child = pty.openpty()
    script = Path(sys.executable).with_name("mina")
    process = subprocess.Popen(
        [str(script), "outbox", "purge"], stdin=child, stdout=child, stderr=child
    )
    os.close(child)
    output = b""
    try:
        while b"?" not in output:  # the question, then the answer
            ready, _, _ = select.select([parent], [], [], 30)
            assert ready, output
            output += os.read(parent, 4096)
        os.write(parent, answer)
        while True:
            ready, _, _ = select.select([parent], [], [], 30)
            assert ready, output
            try:
                chunk = os.read(parent, 4096)
            except OSError:  # EIO: the command exited and closed the terminal
                break
            if not chunk:
                break
            output += chunk
        return process.wait(timeout=30), output.decode().replace("\r\n", "\n")
    finally:
        os.close(parent)
        if process.poll() is None:
            process.kill()


def test_purge_on_a_terminal_asks_first(kept: list[str]) -> None:
    code, output = _purge_on_a_terminal(b"n\n")

    directory = os.environ["MINA_SENTRY_OUTBOX"]
    assert 1 == code
    assert output.startswith(
        f"Delete 3 pending envelope(s), 3 of them error events, from {directory}? [y/N]: n\n"
        "Aborted!"
    )
    assert 4 == len(_run("list")[1].splitlines())

    code, output = _purge_on_a_terminal(b"y\n")
    assert 0 == code
    assert output.endswith(f"purged 3 envelope(s) from {directory}\n")


def test_outbox_off_is_an_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINA_SENTRY_OUTBOX", "off")

    result = CliRunner().invoke(cli.main, ["outbox", "list"])

    assert (1, "Error: MINA_SENTRY_OUTBOX is off: there is no outbox\n") == (
        result.exit_code,
        result.stderr,
    )


def test_the_installed_script_lists_the_outbox(kept: list[str], tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("mina")

    done = subprocess.run(
        [str(script), "outbox", "list"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (0, 4) == (done.returncode, len(done.stdout.splitlines()))
    assert kept == [row.split()[4] for row in done.stdout.splitlines()[1:]]
    assert done.stderr.startswith("3 envelope(s), ")
    assert done.stderr.rstrip().endswith(f" bytes in {tmp_path / 'sentry-outbox'}")
