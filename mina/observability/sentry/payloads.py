"""Sentry's payloads (error and transaction events, breadcrumbs, logs) through Mina's redactor.

Every user-controlled field goes through `mina.redaction.Redactor`; Sentry's structural
fields (ids, times, SDK and module versions) are kept as they are, and frames' source lines
only lose hard-coded secrets (`Redactor.redact_code`), so code stays readable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from sentry_sdk._types import AnnotatedValue

from mina.redaction import REDACTED, Redactor, register_wrapper

__all__ = ["redact_breadcrumb", "redact_sentry_event", "redact_sentry_log"]

# Relay reads the metadata of what the SDK trimmed or removed: keep it, redact the value.
register_wrapper(
    AnnotatedValue,
    lambda annotated: annotated.value,
    lambda annotated, value: AnnotatedValue(value, annotated.metadata),
)

# Sentry's own fields: ids, times, SDK and module versions. Nothing user-controlled.
_SENTRY_STRUCTURE: Final = frozenset(
    {
        "event_id",
        "timestamp",
        "start_timestamp",
        "received",
        "type",
        "platform",
        "level",
        "sdk",
        "modules",
        "debug_meta",
        "release",
        "dist",
        "environment",
        "measurements",
        "_meta",
    }
)
_CODE_LINES: Final = ("pre_context", "post_context")
# Sentry's repr of a request object: Flask's and werkzeug's Request and RequestContext
# ("<RequestContext 'http://host/path?query' [GET] of mina>").
_REQUEST_REPR: Final = re.compile(
    r"<(?P<type>[A-Za-z_][\w.]*) '(?P<url>[A-Za-z][A-Za-z0-9+.\-]*://[^']*)'"
    r" (?P<rest>\[[A-Z]+\][^>]*)>"
)
# A WSGI environ, told by its keys (Sentry sends the first few only).
_ENVIRON_MARKERS: Final = frozenset(
    {"REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_PROTOCOL", "wsgi.version"}
    | {"wsgi.url_scheme", "REQUEST_URI", "RAW_URI", "SCRIPT_NAME", "SERVER_NAME"}
)
_ENVIRON_KEEP: Final = frozenset(
    {"REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "SERVER_NAME", "SERVER_PORT"}
    | {"SERVER_PROTOCOL", "SERVER_SOFTWARE", "wsgi.url_scheme", "wsgi.version"}
    | {"wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "CONTENT_TYPE"}
    | {"CONTENT_LENGTH"}
)
_REQUEST_DEPTH: Final = 3
_PLAIN: Final = frozenset({int, float, bool, type(None)})
_LOG_PARAMETER: Final = "sentry.message.parameter."


def redact_sentry_event(redactor: Redactor, event: dict[str, Any]) -> dict[str, Any]:
    """Return a redacted copy of a Sentry error or transaction *event*.

    Everything user-controlled goes through `Redactor.redact` (message, logentry,
    exception values, frame locals by name and value, request, breadcrumbs, tags, contexts,
    user, extra, spans, transaction). Sentry's structural fields are kept as they are, and
    frames' source lines only lose what matches a credential shape (never ``name=value``
    pairs: ``password = request.json["password"]`` stays readable). Request cookies keep
    their names and lose every value (any cookie may be a session), also with
    *send_pii*, in the shape Relay expects. Without *send_pii*, the
    user's e-mail and IP and the request's ``REMOTE_ADDR`` are dropped.
    """
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key in _SENTRY_STRUCTURE:
            out[key] = value
        elif key in ("exception", "threads"):
            out[key] = _exceptions(redactor, value)
        elif key == "stacktrace":
            out[key] = _stacktrace(redactor, value)
        elif key == "logentry":
            out[key] = _logentry(redactor, value)
        elif key == "request" and isinstance(value, Mapping) and "cookies" in value:
            fields = dict(value)
            cookies = fields.pop("cookies")
            redacted = redactor.redact(fields)
            if isinstance(redacted, dict):
                redacted["cookies"] = _cookies(redactor, cookies)
            out[key] = redacted
        else:
            out[key] = redactor.redact(value)
    if not redactor.send_pii:
        _drop(out, "user", ("email", "ip_address"))
        request = out.get("request")
        if isinstance(request, dict):
            out["request"] = request = dict(request)
            _drop(request, "env", ("REMOTE_ADDR",))
    return out


def _cookies(redactor: Redactor, cookies: Any) -> Any:
    # Names stay (they tell which cookies came), values go. Relay reads a mapping, a list
    # of pairs or a Cookie header string; anything else becomes the marker.
    if isinstance(cookies, Mapping):
        return {redactor.redact_text(str(name)): REDACTED for name in cookies}
    if isinstance(cookies, str):
        names = (part.partition("=")[0].strip() for part in cookies.split(";"))
        return "; ".join(f"{redactor.redact_text(name)}={REDACTED}" for name in names if name)
    if isinstance(cookies, list) and all(
        isinstance(pair, list | tuple) and len(pair) == 2 for pair in cookies
    ):
        return [[redactor.redact_text(str(name)), REDACTED] for name, _ in cookies]
    return REDACTED


def redact_breadcrumb(redactor: Redactor, crumb: dict[str, Any]) -> dict[str, Any]:
    """Return a redacted copy of a Sentry breadcrumb (message, data, category...)."""
    redacted = redactor.redact(crumb)
    return redacted if isinstance(redacted, dict) else {}


def redact_sentry_log(redactor: Redactor, log: dict[str, Any]) -> dict[str, Any]:
    """Return a redacted copy of a Sentry log: its ``body`` and ``attributes``.

    Attributes may be plain values or ``{"value": ..., "type": ...}``; a sensitive
    attribute keeps its shape with its value replaced. A positional message parameter
    (``sentry.message.parameter.0``) is redacted when the body shows it only inside
    something redacted, like `redact_sentry_event` does for ``logentry.params``.
    """
    out = dict(log)
    body = out.get("body")
    shown = redactor.redact(body)
    if "body" in out:
        out["body"] = shown
    attributes = out.get("attributes")
    if isinstance(attributes, Mapping):
        out["attributes"] = {
            name: _attribute(redactor, name, attr) for name, attr in attributes.items()
        }
        if isinstance(body, str) and shown is not body:
            for name, attr in attributes.items():
                if str(name).startswith(_LOG_PARAMETER) and _hidden(_plain(attr), body, shown):
                    out["attributes"][name] = _attribute(redactor, "password", attr)
    return out


def _plain(attr: Any) -> Any:
    typed = isinstance(attr, Mapping) and "value" in attr and "type" in attr
    return attr["value"] if typed else attr


def _hidden(param: Any, formatted: str, shown: str) -> bool:
    # A parameter with no key to judge it by is a secret when the formatted message
    # shows it only inside something that was redacted ("token=%s").
    if not isinstance(param, str | int | float):
        return False
    text = str(param)
    return bool(text) and text in formatted and text not in shown


def _attribute(redactor: Redactor, name: Any, attr: Any) -> Any:
    typed = isinstance(attr, Mapping) and "value" in attr and "type" in attr
    value = _plain(attr)
    new = redactor.redact({name: value})
    new_value = next(iter(new.values())) if isinstance(new, dict) else REDACTED
    if not typed:
        return new_value
    if new_value is value:
        return attr
    return {
        **attr,
        "value": new_value,
        "type": "string" if isinstance(new_value, str) else attr["type"],
    }


def _logentry(redactor: Redactor, entry: Any) -> Any:
    redacted = redactor.redact(entry)
    params = entry.get("params") if isinstance(entry, Mapping) else None
    if not isinstance(params, list | tuple) or not isinstance(redacted, dict):
        return redacted
    formatted = entry.get("formatted")
    if not isinstance(formatted, str):
        try:
            formatted = str(entry.get("message")) % tuple(params)
        except Exception:  # a message that is not a %-format: nothing to compare with
            return redacted
    shown = redactor.redact_text(formatted)
    hidden = [_hidden(p, formatted, shown) for p in params]
    if any(hidden):
        redacted = dict(redacted)
        redacted["params"] = [
            REDACTED if hide else param
            for hide, param in zip(hidden, redactor.redact(list(params)), strict=True)
        ]
    return redacted


def _each(
    redactor: Redactor, container: Any, key: str, item: Callable[[Redactor, Any], Any]
) -> Any:
    # Sentry's list containers ({"values": [...]}, {"frames": [...]}): each item by its
    # own rule; anything of another shape is redacted whole.
    items = container.get(key) if isinstance(container, Mapping) else None
    if not isinstance(items, list):
        return redactor.redact(container)
    out = dict(container)
    out[key] = [item(redactor, value) for value in items]
    return out


def _exceptions(redactor: Redactor, container: Any) -> Any:
    return _each(redactor, container, "values", _exception)


def _exception(redactor: Redactor, exc: Any) -> Any:
    if not isinstance(exc, Mapping):
        return redactor.redact(exc)
    out = {}
    for key, value in exc.items():
        if key == "stacktrace":
            out[key] = _stacktrace(redactor, value)
        elif key in ("type", "module", "id", "thread_id", "current", "crashed", "main"):
            out[key] = value
        else:
            out[key] = redactor.redact(value)
    return out


def _stacktrace(redactor: Redactor, stacktrace: Any) -> Any:
    return _each(redactor, stacktrace, "frames", _frame)


def _frame(redactor: Redactor, frame: Any) -> Any:
    if not isinstance(frame, Mapping):
        return redactor.redact(frame)
    out = dict(frame)
    if "vars" in out:
        out["vars"] = redactor.redact(_request_objects(redactor, out["vars"], 0))
    line = out.get("context_line")
    if isinstance(line, str):
        out["context_line"] = redactor.redact_code(line)
    for key in _CODE_LINES:
        lines = out.get(key)
        if isinstance(lines, list):
            out[key] = [redactor.redact_code(s) if isinstance(s, str) else s for s in lines]
    return out


def _drop(parent: dict[str, Any], name: str, keys: tuple[str, ...]) -> None:
    # Copies rather than mutates: the redacted event may share objects with the original.
    mapping = parent.get(name)
    if isinstance(mapping, Mapping):
        parent[name] = {k: v for k, v in mapping.items() if k not in keys}


def _request_objects(redactor: Redactor, value: Any, depth: int) -> Any:
    """Frame locals with the request's own objects summarised: the request is in the
    event's ``request`` already (redacted, under the PII rules), so a frame carries only
    its method and path. Flask's ``ctx`` and ``req`` (and ``request``) lose their URL's
    query; a WSGI ``environ`` keeps its structural keys, every other value is replaced
    (the query, the raw URI, headers, cookies, the client's address)."""
    if isinstance(value, str):
        m = _REQUEST_REPR.fullmatch(value) if value.startswith("<") else None
        if m is None:
            return value
        url, query, _ = m.group("url").partition("?")
        shown = f"{url}?{REDACTED}" if query else url
        return f"<{m.group('type')} '{redactor.redact_text(shown)}' {m.group('rest')}>"
    if depth >= _REQUEST_DEPTH:
        return value
    if isinstance(value, Mapping):
        if len(_ENVIRON_MARKERS.intersection(value)) >= 2:
            return {k: v if k in _ENVIRON_KEEP else REDACTED for k, v in value.items()}
        out: dict[Any, Any] | None = None
        for key, item in value.items():
            if (type(item) is str and not item.startswith("<")) or type(item) in _PLAIN:
                continue  # most locals: nothing to summarise, no call
            new = _request_objects(redactor, item, depth + 1)
            if new is not item:
                out = dict(value) if out is None else out
                out[key] = new
        return value if out is None else out  # unchanged: the same object, nothing copied
    if isinstance(value, list):
        listed = [_request_objects(redactor, v, depth + 1) for v in value]
        return value if all(a is b for a, b in zip(listed, value, strict=True)) else listed
    return value
