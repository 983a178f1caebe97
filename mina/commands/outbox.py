"""``mina outbox``: look into, send and empty the Sentry outbox (``MINA_SENTRY_OUTBOX``).

The envelopes in it went through Mina's Sentry hooks before they were written, so what
``show`` prints is already redacted: exactly what Sentry receives.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click
from sentry_sdk.envelope import Envelope

from mina.observability.sentry.outbox import Outbox
from mina.observability.sentry.sdk_http import OutboxSender
from mina.observability.sentry.transport import sdk_options
from mina.settings import ConfigError, Settings

__all__ = ["outbox"]


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _open(settings: Settings) -> Outbox:
    if settings.sentry_outbox is None:
        raise click.ClickException("MINA_SENTRY_OUTBOX is off: there is no outbox")
    return Outbox(settings.sentry_outbox, settings.outbox_max_events, settings.outbox_max_bytes)


def _describe(data: bytes) -> tuple[str, str]:
    # (Sentry's event id or "-", the item types) for one envelope.
    envelope = Envelope.deserialize(data)
    event_id = envelope.headers.get("event_id") or "-"
    return str(event_id), ",".join(item.type or "?" for item in envelope.items)


@click.group("outbox")
def outbox() -> None:
    """The Sentry outbox: envelopes kept on disk until Sentry has them."""


@outbox.command("list")
def list_() -> None:
    """List the envelopes in the outbox, in the order they are sent."""
    box = _open(_settings())
    entries = box.entries()
    now = time.time()
    click.echo(f"{'ID':<34} {'STATE':<8} {'BYTES':>8} {'AGE':>8}  {'EVENT ID':<32}  ITEMS")
    for entry in entries:
        try:
            event_id, items = _describe(entry.path.read_bytes())
        except FileNotFoundError:  # sent or dropped while listing
            continue
        age = f"{max(now - entry.created, 0.0):.0f}s"
        click.echo(
            f"{entry.id:<34} {entry.state:<8} {entry.size:>8} {age:>8}  {event_id:<32}  {items}"
        )
    total = sum(entry.size for entry in entries)
    click.echo(f"{len(entries)} envelope(s), {total} bytes in {box.directory}", err=True)


@outbox.command("show")
@click.argument("envelope_id")
def show(envelope_id: str) -> None:
    """Print envelope ENVELOPE_ID as JSON: its headers and items (already redacted)."""
    box = _open(_settings())
    entry = box.find(envelope_id)
    if entry is None:
        raise click.ClickException(f"no envelope {envelope_id!r} in {box.directory}")
    try:
        envelope = Envelope.deserialize(entry.path.read_bytes())
    except FileNotFoundError:
        raise click.ClickException(f"envelope {envelope_id!r} was sent meanwhile") from None
    items: list[dict[str, Any]] = []
    for item in envelope.items:
        payload: Any
        try:
            payload = json.loads(item.get_bytes())
        except ValueError:
            payload = f"<{len(item.get_bytes())} bytes>"
        items.append({"headers": item.headers, "payload": payload})
    document = {"id": entry.id, "headers": envelope.headers, "items": items}
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


@outbox.command("flush")
@click.option("--dsn", default=None, help="Send to this DSN instead of SENTRY_DSN.")
def flush(dsn: str | None) -> None:
    """Send the pending envelopes now; report how many were sent and how many are left.

    Exit status 0 when everything was sent, 1 when something is left (Sentry unreachable,
    rate limiting, or an envelope it refused).
    """
    settings = _settings()
    box = _open(settings)
    dsn = dsn or settings.sentry_dsn
    if not dsn:
        raise click.ClickException("no DSN: pass --dsn or set SENTRY_DSN")
    try:
        sender = OutboxSender(sdk_options(dsn=dsn), settings.sentry_timeout)
    except Exception as exc:  # a malformed --dsn
        raise click.ClickException(f"--dsn is invalid: {exc}") from None
    box.recover()
    sent = failed = 0
    problem = ""
    for entry in box.pending():
        claim = box.claim(entry)
        if claim is None:  # the app's own sender took it
            continue
        try:
            status, _ = sender.post(box.read(claim))
        except Exception as exc:
            box.release(claim)
            failed += 1
            problem = f"Sentry unreachable ({type(exc).__name__})"
            break
        if 200 <= status < 300:
            box.done(claim)
            sent += 1
            continue
        box.release(claim)
        failed += 1
        problem = f"HTTP {status} for {claim.id}"
        if status == 429 or status >= 500:
            break  # the rest would meet the same answer
    left = len(box.pending())
    summary = f"sent {sent}, failed {failed}, left {left} in {box.directory}"
    click.echo(summary + (f": {problem}" if problem else ""))
    if failed or left:
        raise SystemExit(1)


@outbox.command("purge")
def purge() -> None:
    """Delete every pending envelope (those a process is sending right now stay)."""
    box = _open(_settings())
    click.echo(f"purged {box.purge()} envelope(s) from {box.directory}")
