"""Request bodies a hostile client cannot use against Mina: bounded, never cut, never deep.

`init_app` applies three rules to every request of an app:

- **A size limit.** ``MAX_CONTENT_LENGTH`` is ``MINA_MAX_JSON_BYTES`` (a view may raise its
  own, as the chunk upload does with ``request.max_content_length``). A larger body answers
  413 with Mina's JSON error body; with a ``Content-Length`` it is refused before a byte of
  it is read.
- **Never truncated.** A body without ``Content-Length`` (``Transfer-Encoding: chunked``)
  is read up to the limit by werkzeug, which then stops and returns what it read, so a body
  one byte over the limit arrived cut and was accepted. `Request` reads one byte past the
  limit and answers 413 when it gets it.
- **Not too deep.** JSON nested deeper than the interpreter's recursion limit made
  ``get_json(silent=True)`` raise `RecursionError` (a 500 and a Sentry event per request);
  `JSONProvider` turns it into the invalid-JSON case, so views answer 400.
"""

from __future__ import annotations

from typing import IO, Any, cast

import flask
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_content_length

from mina.errors import json_error

__all__ = ["JSONProvider", "JSONTooDeep", "Request", "StrictLimitedStream", "init_app", "too_deep"]


class StrictLimitedStream(LimitedStream):
    """A stream of at most *maximum* bytes that raises rather than stop at the limit.

    werkzeug's maximum-length stream cannot tell a body of exactly the limit from a longer
    one, so it returns the first *maximum* bytes of both. This one reads up to one byte
    more, and that byte means the body is too large.

    :raises RequestEntityTooLarge: when the body holds more than *maximum* bytes.
    """

    def __init__(self, stream: IO[bytes], maximum: int) -> None:
        super().__init__(stream, maximum + 1, is_max=True)
        self.maximum = maximum

    def readinto(self, b: Any) -> int | None:
        """Read into *b* as werkzeug does; raise once a byte past the maximum arrives."""
        size = super().readinto(b)
        if self._pos > self.maximum:
            raise RequestEntityTooLarge()
        return size


class Request(flask.Request):
    """Flask's request, whose stream of a body without ``Content-Length`` is never cut."""

    @cached_property
    def stream(self) -> IO[bytes]:
        """The body stream; see `StrictLimitedStream` for bodies without a length."""
        maximum = self.max_content_length
        if (
            maximum is not None
            and "wsgi.input_terminated" in self.environ  # the server ends chunked bodies
            and get_content_length(self.environ) is None
        ):
            return cast(IO[bytes], StrictLimitedStream(self.environ["wsgi.input"], maximum))
        stream: IO[bytes] = super().stream
        return stream


class JSONTooDeep(ValueError):
    """A JSON document nested deeper than the parser can follow (invalid JSON to Flask)."""


def too_deep(request: flask.Request) -> bool:
    """Whether *request*'s JSON body failed to parse because it is nested too deeply.

    ``get_json(silent=True)`` answers None for every bad body; a view that says why asks
    this (the body is cached, its size bounded by ``MAX_CONTENT_LENGTH``).
    """
    if not request.is_json:
        return False
    try:
        flask.current_app.json.loads(request.get_data(cache=True))
    except JSONTooDeep:
        return True
    except ValueError:
        return False
    return False


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON, where a document nested too deeply to parse is invalid JSON."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse *s*; a `ValueError`, never a `RecursionError`, when it is too deep."""
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            # Recovering is safe: the parser unwound its own frames before raising.
            raise JSONTooDeep("JSON nested too deeply") from None


def _too_large(_exc: RequestEntityTooLarge) -> flask.Response:
    limit = flask.request.max_content_length
    return json_error(413, "too_large", f"the request body may be at most {limit} bytes")


def init_app(app: flask.Flask, max_bytes: int) -> None:
    """Bound *app*'s request bodies to *max_bytes*, never cut them, reject deep JSON."""
    app.request_class = Request
    app.json = JSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = max_bytes
    app.register_error_handler(RequestEntityTooLarge, _too_large)
