"""``python -m mina.testing``: the local Sentry-protocol ingest on its own, to watch events.

Starts `mina.testing.SentryIngest` on 127.0.0.1, prints the DSN to give Mina
(``SENTRY_DSN=... make run``), then one line per item as it arrives: its type, and for
events and transactions what identifies them (level, message or exception, transaction
name). ``--json`` prints each item's whole payload instead. Nothing leaves the machine;
Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mina.testing.ingest import Item, SentryIngest

__all__ = ["describe", "main"]


def describe(item: Item) -> str:
    """One line for *item*: its type, and for an event or a transaction what names it."""
    payload = item.json if isinstance(item.json, dict) else {}
    if item.type == "event":
        message = (payload.get("logentry") or {}).get("message") or payload.get("message")
        if not message:
            values = (payload.get("exception") or {}).get("values") or [{}]
            message = f"{values[-1].get('type', '?')}: {values[-1].get('value', '')}"
        return f"event {payload.get('event_id', '-')} {payload.get('level', '-')} {message}"
    if item.type == "transaction":
        return f"transaction {payload.get('event_id', '-')} {payload.get('transaction', '-')}"
    return item.type


def _shown(item: Item, as_json: bool) -> str:
    if not as_json:
        return describe(item)
    payload: Any = item.json if item.json is not None else f"<{len(item.payload)} bytes>"
    return json.dumps({"type": item.type, "payload": payload}, ensure_ascii=False)


def _more_than(count: int) -> Callable[[SentryIngest], bool]:
    return lambda watched: len(watched.envelopes) > count


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ingest until interrupted; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m mina.testing",
        description="A local Sentry-protocol ingest on 127.0.0.1 that prints what arrives.",
    )
    parser.add_argument("--port", type=int, default=8970, help="port to listen on (0: any free)")
    parser.add_argument("--project", type=int, default=1, help="project id in the DSN")
    parser.add_argument("--key", help="the DSN's public key (default: a random one)")
    parser.add_argument("--json", action="store_true", help="print each item's whole payload")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port}: expected 0 to 65535")
    ingest = SentryIngest(args.project, port=args.port, public_key=args.key)
    try:
        ingest.start()
    except OSError as exc:
        print(
            f"python -m mina.testing: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}"
            "; choose another port with --port",
            file=sys.stderr,
        )
        return 1
    # SIGTERM ends it as Ctrl-C does: through the finally below, the socket closed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"listening; send events with SENTRY_DSN={ingest.dsn}", flush=True)
    seen = 0
    try:
        while True:
            ingest.wait(_more_than(seen), timeout=1.0)  # woken by each arrival
            envelopes = ingest.envelopes
            for envelope in envelopes[seen:]:
                for item in envelope.items:
                    print(_shown(item, args.json), flush=True)
            seen = len(envelopes)
    except KeyboardInterrupt:
        return 0
    finally:
        ingest.stop()


if __name__ == "__main__":
    sys.exit(main())
