"""mina.testing.plugin: the fixtures Mina's users get, and what they leave behind."""

from __future__ import annotations

import importlib.metadata
import io
import logging
import subprocess
import sys

import pytest
import structlog
import structlog.testing

import mina.testing.plugin
from mina.testing import CapturedLogs, capture_pipeline


def test_the_entry_point_registers_the_plugin(request: pytest.FixtureRequest) -> None:
    [entry] = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "mina"]

    assert "mina.testing.plugin" == entry.value
    assert mina.testing.plugin is request.config.pluginmanager.get_plugin("mina")


def test_loading_the_plugin_imports_neither_flask_nor_the_app() -> None:
    probe = (
        "import sys, mina.testing.plugin; "
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in "
        "{'flask', 'werkzeug', 'sentry_sdk', 'structlog'} or m == 'mina.app'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )

    assert "[]\n" == result.stdout


def test_a_suite_that_uses_no_fixture_is_untouched(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys

        def test_plain():
            assert not {"flask", "sentry_sdk", "mina.app"} & set(sys.modules)
        """
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)


def test_captured_logs_are_after_redaction_unlike_structlogs_capture(
    captured_logs: CapturedLogs,
) -> None:
    log = structlog.get_logger("auth")
    with structlog.testing.capture_logs() as before_the_chain:
        log.info("user.login", password="hunter2")
    log.info("user.login", password="hunter2", name="ada")

    assert "hunter2" == before_the_chain[0]["password"]
    [line] = captured_logs.events("user.login")
    assert ("[REDACTED]", "ada") == (line["password"], line["name_"])
    assert "hunter2" not in captured_logs.text


def test_captured_logs_helpers(captured_logs: CapturedLogs) -> None:
    log = structlog.get_logger("helpers")
    log.info("one")
    log.info("two", n=2)
    log.info("two", n=3)

    assert ["one", "two", "two"] == [line["event"] for line in captured_logs.all()]
    assert [2, 3] == [line["n"] for line in captured_logs.events("two")]
    assert "<CapturedLogs 3 line(s)>" == repr(captured_logs)
    captured_logs.clear()
    log.info("three")
    assert ["three"] == [line["event"] for line in captured_logs.all()]


def test_a_line_that_is_not_json_fails_loudly() -> None:
    logs = CapturedLogs(io.StringIO('{"event": "ok"}\nnot json\n'))

    with pytest.raises(AssertionError, match=r"^line 2 is not a JSON object: 'not json'$"):
        logs.all()


def test_captures_nest_and_the_pipeline_returns_to_the_process_stdout(
    capfd: pytest.CaptureFixture[str],
) -> None:
    log = structlog.get_logger("nest")
    with capture_pipeline() as outer:
        with capture_pipeline(log_level=logging.DEBUG) as inner:
            log.debug("inner.debug")
        log.info("outer.info")
        log.debug("outer.debug")  # the outer capture's INFO level is back
    capfd.readouterr()
    log.info("after.both")
    for handler in logging.getLogger().handlers:
        handler.flush()  # stdout's writer thread writes behind the call

    assert ["inner.debug"] == [line["event"] for line in inner.all()]
    assert ["outer.info"] == [line["event"] for line in outer.all()]
    assert '"event":"after.both"' in capfd.readouterr().out


def test_mina_sentry_is_closed_and_context_cleared_after_the_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import sentry_sdk
        import structlog

        import mina.context

        def test_first(mina_sentry, sentry_ingest):
            lines = mina_sentry(traces_sample_rate=0.0)
            mina.context.bind(tenant="acme")
            structlog.get_logger().error("first.failed")
            sentry_sdk.flush()
            assert "acme" == sentry_ingest.wait_for_events()[0]["tags"]["tenant"]
            assert "acme" == lines.events("first.failed")[0]["tenant"]

        def test_second(captured_logs):
            assert not sentry_sdk.get_client().is_active()
            structlog.get_logger().info("second")
            assert "tenant" not in captured_logs.events("second")[0]
        """
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=2)
