"""``mina sentry-check``: is Sentry on, and do events arrive? One command, one answer.

It validates the configuration, says whether Sentry is on and why, sends a test message
and a test exception through the SDK's real HTTP transport with Mina's options and hooks
(`mina.observability.sentry.sentry_options`), waits for the answers, and reports each
event: delivered (with its id), rejected (status and Sentry's reason), unreachable, or
rate-limited. The exit code says which (`ExitCode`). The DSN's key is never printed.
"""

from __future__ import annotations

import enum
import json
import logging
import re
from dataclasses import dataclass
from typing import Final

import click
import sentry_sdk
from sentry_sdk.utils import Dsn

from mina.logging_config import configure_logging
from mina.observability.sentry import sentry_options
from mina.observability.sentry.sdk import quiet_sdk_logger
from mina.observability.sentry.sdk_http import Delivery, RecordingTransport
from mina.settings import ConfigError, Settings

__all__ = ["ExitCode", "SentryCheckError", "sentry_check"]


class ExitCode(enum.IntEnum):
    """``mina sentry-check`` exit codes; when events fare differently, the highest wins."""

    DELIVERED = 0
    CONFIG_INVALID = 3
    SENTRY_OFF = 4
    REJECTED = 5
    RATE_LIMITED = 6
    UNREACHABLE = 7
    NOT_SENT = 8


class SentryCheckError(Exception):
    """The test exception ``mina sentry-check`` sends (so it is easy to find in Sentry)."""


_MESSAGE: Final = "mina sentry-check: test message"
_EXCEPTION: Final = "mina sentry-check: test exception"
_REASON_MAX: Final = 200
# urllib3 prefixes its errors with the connection object's repr: noise for a person.
_OBJECT_REPR: Final = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>: ")


@dataclass(frozen=True, slots=True)
class _Outcome:
    code: ExitCode
    text: str


def _reason(delivery: Delivery) -> str:
    headers = delivery.headers or {}
    reason = headers.get("x-sentry-error", "")
    if not reason:
        body = delivery.body.decode("utf-8", "replace")
        try:
            detail = json.loads(body).get("detail")
        except (ValueError, AttributeError):
            detail = None
        reason = str(detail) if detail else body
    return " ".join(reason.split())[:_REASON_MAX]


def _error(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None)  # urllib3's MaxRetryError wraps the real one
    exc = inner if isinstance(inner, BaseException) else exc
    text = _OBJECT_REPR.sub("", str(exc)) or type(exc).__name__
    return " ".join(text.split())[:_REASON_MAX]


def _outcome(event_id: str | None, deliveries: list[Delivery], timeout: float) -> _Outcome:
    if event_id is None:
        return _Outcome(
            ExitCode.NOT_SENT, "not sent: dropped by the SDK (sample rate or a before_send hook)"
        )
    mine = [d for d in deliveries if event_id in d.event_ids]
    if not mine:
        return _Outcome(ExitCode.UNREACHABLE, f"unreachable: no answer within {timeout:g}s")
    last = mine[-1]
    if last.dropped is not None:
        if last.dropped == "ratelimit_backoff":
            return _Outcome(ExitCode.RATE_LIMITED, "rate-limited: not sent, Sentry asked to wait")
        return _Outcome(ExitCode.NOT_SENT, f"not sent: dropped by the SDK ({last.dropped})")
    if last.status is None:
        error = last.error or RuntimeError("no answer")
        return _Outcome(ExitCode.UNREACHABLE, f"unreachable: {_error(error)}")
    if 200 <= last.status < 300:
        return _Outcome(ExitCode.DELIVERED, f"delivered (HTTP {last.status})")
    if last.status == 429:
        headers = last.headers or {}
        wait = headers.get("retry-after") or headers.get("x-sentry-rate-limits")
        return _Outcome(
            ExitCode.RATE_LIMITED,
            f"rate-limited (HTTP 429{f', retry after {wait}' if wait else ''})",
        )
    reason = _reason(last)
    return _Outcome(
        ExitCode.REJECTED, f"rejected (HTTP {last.status}{': ' if reason else ''}{reason})"
    )


def _ingest(dsn: str) -> str:
    parsed = Dsn(dsn)  # validated by Settings already
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}{parsed.project_id}"


def _send() -> tuple[str | None, str | None]:
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("mina.check", "sentry-check")
        message_id = sentry_sdk.capture_message(_MESSAGE, level="info")
        try:
            raise SentryCheckError(_EXCEPTION)
        except SentryCheckError:
            error_id = sentry_sdk.capture_exception()
    return message_id, error_id


_HELP: Final = f"""Check that Sentry is configured and that events arrive.

Validates the configuration (as start-up does), says whether Sentry is on and why,
sends a test message and a test exception ({SentryCheckError.__name__}) through the
SDK's own transport with Mina's options, waits for the answers, and prints what became
of each: delivered (with the event id to look up in Sentry), rejected (HTTP status and
Sentry's reason), rate-limited, or unreachable. The DSN's key is never printed.

\b
Exit codes (when the two events fare differently, the highest wins):
  {ExitCode.DELIVERED:d}  delivered: both events accepted
  {ExitCode.CONFIG_INVALID:d}  the configuration is invalid (the line names the variable)
  {ExitCode.SENTRY_OFF:d}  Sentry is off: SENTRY_DSN is not set
  {ExitCode.REJECTED:d}  rejected: Sentry answered an error (wrong key, project, ...)
  {ExitCode.RATE_LIMITED:d}  rate-limited: Sentry answered 429
  {ExitCode.UNREACHABLE:d}  unreachable: no connection, or no answer in time
  {ExitCode.NOT_SENT:d}  not sent: the SDK dropped the events before sending
"""


@click.command("sentry-check", help=_HELP)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for Sentry's answers.",
)
@click.pass_context
def sentry_check(ctx: click.Context, timeout: float) -> None:
    """See ``_HELP``."""
    try:
        settings = Settings.from_env()
        redactor = configure_logging(settings)  # the hooks redact with the pipeline's rules
    except ConfigError as exc:
        click.echo(f"Configuration: invalid: {exc}")
        ctx.exit(ExitCode.CONFIG_INVALID)
    click.echo("Configuration: valid.")
    if not settings.sentry_dsn:
        click.echo("Sentry: off, because SENTRY_DSN is not set. Set it to your project's DSN.")
        ctx.exit(ExitCode.SENTRY_OFF)
    click.echo(
        f"Sentry: on, because SENTRY_DSN is set: ingest {_ingest(settings.sentry_dsn)},"
        f" environment {settings.sentry_environment}, release {settings.sentry_release}."
    )
    options = sentry_options(settings, redactor)
    sentry_sdk.init(**options, transport=RecordingTransport)
    quiet_sdk_logger(settings.sentry_debug)
    client = sentry_sdk.get_client()
    transport = client.transport
    assert isinstance(transport, RecordingTransport)
    if not settings.sentry_debug:
        # This output is for a person: no JSON lines (urllib3's retries) in between.
        logging.disable(logging.CRITICAL)
    try:
        ids = _send()
        click.echo(f"Sent a test message and a test exception; waiting up to {timeout:g}s.")
        client.flush(timeout=timeout)
    finally:
        logging.disable(logging.NOTSET)
    deliveries = transport.deliveries
    worst = ExitCode.DELIVERED
    for label, event_id in zip(("message", "exception"), ids, strict=True):
        outcome = _outcome(event_id, deliveries, timeout)
        click.echo(f"{label:<9}  {event_id or '-'}  {outcome.text}")
        worst = max(worst, outcome.code)
    client.close(timeout=0)
    sentry_sdk.get_global_scope().set_client(None)
    click.echo(f"Result: {ExitCode(worst).name.lower().replace('_', '-')}.")
    ctx.exit(worst)
