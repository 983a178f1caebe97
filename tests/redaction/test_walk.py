"""Structure walking: values, mappings, argv lists, objects, the structlog processor."""

from __future__ import annotations

import dataclasses
import datetime
import json
import string
import uuid
import warnings
from collections import OrderedDict, namedtuple
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mina.redaction import REDACTED, Redactor

ARGV_CASES = [
    # (argv, expected): must-redact rows, then must-keep rows.
    (["mina", "--password", "hunter2"], ["mina", "--password", REDACTED]),
    (["mina", "--token", "t0k", "--port", "5000"], ["mina", "--token", REDACTED, "--port", "5000"]),
    (["--api-key", "k", "serve"], ["--api-key", REDACTED, "serve"]),
    (["--db-password", "pw"], ["--db-password", REDACTED]),
    (["-password", "pw"], ["-password", REDACTED]),  # Java-style
    (["--client_secret", "-starts-with-a-dash"], ["--client_secret", REDACTED]),
    (["--password=hunter2"], [f"--password={REDACTED}"]),
    (["'--token'", "'abc'"], ["'--token'", REDACTED]),  # Sentry's reprs of frame locals
    (("--token", "abc"), ("--token", REDACTED)),
    (["--max-tokens", "100"], ["--max-tokens", "100"]),
    (["--max-tokens", "sk-x"], ["--max-tokens", REDACTED]),
    (["--auth-method", "password"], ["--auth-method", "password"]),
    (["--token", "--verbose"], ["--token", "--verbose"]),  # a switch, then another flag
    (["--no-auth", "serve"], ["--no-auth", "serve"]),
    (["--port", "5000", "--author", "ann"], ["--port", "5000", "--author", "ann"]),
    (["--password"], ["--password"]),
    (["-", "--", "x"], ["-", "--", "x"]),
]


class TestArgv:
    @pytest.mark.parametrize(("argv", "expected"), ARGV_CASES)
    def test_lists(self, redactor: Redactor, argv: Any, expected: Any) -> None:
        """The item after a sensitive --flag in a list of strings is its value."""
        assert expected == redactor.redact(argv)

    def test_unchanged_list_is_the_same_object(self, redactor: Redactor) -> None:
        """Copy-on-write holds for argv lists with harmless flags."""
        argv = ["mina", "--port", "5000", "--max-tokens", "100"]

        assert argv is redactor.redact(argv)


@dataclasses.dataclass
class Login:
    username: str
    password: str


class Boom:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class Leaky:
    def __repr__(self) -> str:
        return "Leaky(token=abc123)"


class Model:
    """Pydantic-v2-like."""

    def model_dump(self) -> dict[str, Any]:
        return {"name": "m", "api_key": "k"}


class TestStructures:
    def test_nested(self, redactor: Redactor) -> None:
        """Mappings, lists and tuples are walked; sensitive keys keep their key."""
        value = {
            "meeting_id": "m1",
            "headers": {"Authorization": "Bearer x", "Accept": "*/*"},
            "items": [{"password": "p"}, ("GET", "/a?token=t")],
        }

        assert {
            "meeting_id": "m1",
            "headers": {"Authorization": REDACTED, "Accept": "*/*"},
            "items": [{"password": REDACTED}, ("GET", f"/a?token={REDACTED}")],
        } == redactor.redact(value)
        assert "p" == value["items"][0]["password"]  # the input is not modified

    def test_copy_on_write(self, redactor: Redactor) -> None:
        """Unchanged containers come back as themselves."""
        value = {"a": [1, "x", {"b": (2, "y")}], "meeting_id": "m"}

        assert value is redactor.redact(value)

    def test_types(self, redactor: Redactor) -> None:
        """Sets become lists, other mappings dicts, namedtuples keep their type."""
        Point = namedtuple("Point", "x token")
        when = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
        ident = uuid.uuid4()

        assert ["a"] == redactor.redact({"a"})
        assert ["a"] == redactor.redact(frozenset({"a"}))
        assert {"token": REDACTED} == redactor.redact(OrderedDict(token="t"))
        assert Point(1, "x") == redactor.redact(Point(1, "x"))
        assert [1, 2.5, None, True, when, ident] == redactor.redact(
            [1, 2.5, None, True, when, ident]
        )

    def test_mapping_with_fresh_keys(self, redactor: Redactor) -> None:
        """A Mapping that makes new key objects on each iteration is still redacted."""
        token = "ghp_" + "k3Y" * 12

        class Fresh(Mapping[str, Any]):
            def __getitem__(self, key: str) -> Any:
                return {"meeting_id": "m", token: 1, "api_key": "k"}[key]

            def __iter__(self) -> Iterator[str]:
                return iter(["".join(["meeting", "_id"]), "".join(token), "".join("api_key")])

            def __len__(self) -> int:
                return 3

        assert {"meeting_id": "m", REDACTED: 1, "api_key": REDACTED} == redactor.redact(Fresh())

    def test_dataclass_and_models(self, redactor: Redactor) -> None:
        """Dataclasses and Pydantic-like models become redacted dicts."""
        assert {"username": "bob", "password": REDACTED} == redactor.redact(Login("bob", "pw"))
        assert {"name": "m", "api_key": REDACTED} == redactor.redact(Model())

    def test_bytes_become_text(self, redactor: Redactor) -> None:
        """Bytes are decoded as UTF-8 (bad bytes replaced) and scanned."""
        assert f"token={REDACTED} \ufffd" == redactor.redact(b"token=abc \xff")
        assert "ok" == redactor.redact(bytearray(b"ok"))

    def test_objects(self, redactor: Redactor) -> None:
        """Objects are kept unless their repr holds a secret; they never make it raise."""
        plain = object()

        assert plain is redactor.redact(plain)
        assert f"Leaky(token={REDACTED})" == redactor.redact(Leaky())
        assert "<unrepresentable Boom>" == redactor.redact(Boom())
        assert f"ValueError: bad password={REDACTED}" == redactor.redact(
            ValueError("bad password=hunter2")
        )

    def test_cycles(self, redactor: Redactor) -> None:
        """A container that contains itself becomes a placeholder; no loop, no raise."""
        loop: dict[str, Any] = {"token": "t", "meeting_id": "m"}
        loop["self"] = loop
        items: list[Any] = ["x"]
        items.append(items)

        assert {"token": REDACTED, "meeting_id": "m", "self": "<cycle>"} == redactor.redact(loop)
        assert ["x", "<cycle>"] == redactor.redact(items)

    def test_shared_is_not_a_cycle(self, redactor: Redactor) -> None:
        """The same object twice (not nested in itself) is redacted twice."""
        shared = {"token": "t"}

        assert [{"token": REDACTED}] * 2 == redactor.redact([shared, shared])

    def test_depth(self) -> None:
        """Nesting deeper than max_depth becomes a placeholder."""
        value: Any = "leaf"
        for _ in range(10):
            value = [value]

        redacted = Redactor(max_depth=3).redact(value)

        assert [[["<max depth>"]]] == redacted

    def test_very_deep_never_raises(self, redactor: Redactor) -> None:
        """Depth far beyond the recursion limit is fine."""
        value: Any = {}
        for _ in range(5000):
            value = {"a": value}

        assert isinstance(redactor.redact(value), dict)


class TestProcessor:
    def test_redacts_in_place(self, redactor: Redactor) -> None:
        """The structlog processor redacts keys, values and the event text in place."""
        event_dict: dict[str, Any] = {
            "event": "login failed for password=hunter2",
            "level": "warning",
            "meeting_id": "m1",
            "api_key": "k",
            "headers": {"Cookie": "session=s"},
            "count": 3,
        }

        result = redactor(None, "warning", event_dict)

        assert result is event_dict
        assert {
            "event": f"login failed for password={REDACTED}",
            "level": "warning",
            "meeting_id": "m1",
            "api_key": REDACTED,
            "headers": {"Cookie": REDACTED},
            "count": 3,
        } == event_dict
        assert ["event", "level", "meeting_id", "api_key", "headers", "count"] == list(event_dict)

    def test_exc_info_is_passed_through(self, redactor: Redactor) -> None:
        """exc_info stays an exception for the renderer (the formatter redacts the text)."""
        exc = ValueError("token=abc")
        event_dict: dict[str, Any] = {"event": "x", "exc_info": exc}

        assert exc is redactor(None, "error", event_dict)["exc_info"]

    def test_secret_key_is_renamed(self, redactor: Redactor) -> None:
        """A key that is itself a secret is replaced by the marker."""
        token = "sk-" + "A1b2" * 6
        event_dict: dict[str, Any] = {"event": "x", token: 1}

        assert {"event": "x", REDACTED: 1} == redactor(None, "info", event_dict)

    def test_processor_never_raises(self, redactor: Redactor) -> None:
        """An unrepresentable value does not break the log call."""
        event_dict: dict[str, Any] = {"event": "x", "obj": Boom()}

        assert {"event": "x", "obj": "<unrepresentable Boom>"} == redactor(None, "info", event_dict)


# -- properties ----------------------------------------------------------------------------

SECRET_KEY_NAMES = ["password", "api_key", "accessToken", "X-Auth-Token", "client_secret", "Cookie"]
HARMLESS = st.text(alphabet=string.ascii_lowercase + " ", max_size=12)
leaves = st.one_of(st.integers(), HARMLESS, st.none(), st.booleans())
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(["a", "b", "items", "data", "meeting_id"]), children, max_size=4
        ),
    ),
    max_leaves=20,
)
canaries = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=40).map(
    lambda s: "CANARY" + s
)


def _plant(tree: Any, path: list[int], item: tuple[str, Any]) -> Any:
    """Put *item* (key, value) in the first dict along *path*, or wrap *tree* in one."""
    key, value = item
    node = tree
    for step in path:
        children = list(node.values()) if isinstance(node, dict) else node
        if not isinstance(children, list) or not children:
            break
        child = children[step % len(children)]
        if not isinstance(child, dict | list):
            break
        node = child
    if isinstance(node, dict):
        node[key] = value
        return tree
    if isinstance(node, list):
        node.append({key: value})
        return tree
    return {"root": tree, key: value}


def _plantings(canary: str) -> list[tuple[str, Any]]:
    return [
        ("secret", canary),  # replaced by the key below
        ("url", f"https://mina.example.com/cb?token={canary}&page=2"),
        ("headers", f"Authorization: Bearer {canary}"),
        ("error", f"ValueError('login failed: password={canary}')"),
        ("exc", ValueError(f"bad token={canary}")),
        ("dsn", f"postgres://mina:{canary}@db/mina"),
        ("blob", f"token={canary}".encode()),
        ("body", json.dumps({"user": "bob", "client_secret": canary})),
        ("nested", json.dumps(json.dumps({"password": canary}))),  # JSON inside JSON
        ("raw", f"X-Api-Key: {canary}\nAccept: */*"),
        ("login", Login("bob", canary)),
        ("from", f"mail from {canary}@example.com"),
        ("jwt", f"eyJhbGciOiJIUzI1NiJ9.eyJ{canary}.{canary}"),
        ("aws", f"key=AKIA{canary.upper()[-16:].rjust(16, 'X')}"),
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tree=trees,
    canary=canaries,
    path=st.lists(st.integers(min_value=0, max_value=5), max_size=4),
    how=st.integers(min_value=0, max_value=13),
    key=st.sampled_from(SECRET_KEY_NAMES),
)
def test_canary_never_survives(tree: Any, canary: str, path: list[int], how: int, key: str) -> None:
    """A secret planted anywhere, in any form, never appears in the redacted output."""
    name, value = _plantings(canary)[how]
    if how == 0:
        name = key
    tree = _plant(tree, path, (name, value))
    tree = _plant(tree, path[::-1], ("meeting_id", "keep-me-42"))

    redacted = Redactor().redact(tree)

    assert canary not in repr(redacted)
    assert "keep-me-42" in repr(redacted)


@settings(max_examples=100, deadline=None)
@given(tree=trees)
def test_harmless_trees_are_returned_as_is(tree: Any) -> None:
    """Without secrets, redaction is the identity (and allocates nothing)."""
    assert tree is Redactor().redact(tree)


class Unreadable(Mapping[str, Any]):
    """A mapping that fails while being walked (a lazy proxy whose backend is gone)."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("backend gone")

    def __len__(self) -> int:
        return 1


class TestFailClosed:
    def test_redact_returns_the_marker(self, redactor: Redactor) -> None:
        """What cannot be inspected is never let through, and never raises."""
        assert REDACTED == redactor.redact(Unreadable())

    def test_processor_replaces_the_value(self, redactor: Redactor) -> None:
        """The structlog processor keeps the event, with the unreadable value replaced."""
        event = {"event": "x", "state": Unreadable(), "n": 1}

        assert {"event": "x", "state": REDACTED, "n": 1} == redactor(None, "info", event)


class DeprecatedDictModel(Model):
    """Pydantic-v2-like, with v1's ``__fields__`` and a ``dict()`` that warns, as v2 has."""

    __fields__: ClassVar[dict[str, Any]] = {"name": None, "api_key": None}

    def dict(self) -> dict[str, Any]:
        warnings.warn("dict() is deprecated, use model_dump()", DeprecationWarning, stacklevel=2)
        return self.model_dump()


class TestLimits:
    def test_mapping_depth(self) -> None:
        """Each level of mappings counts once against max_depth."""
        value = {"a": {"b": {"c": {"d": "leaf"}}}}

        assert {"a": {"b": {"c": "<max depth>"}}} == Redactor(max_depth=3).redact(value)
        assert value == Redactor(max_depth=4).redact(value)

    def test_default_text_limit_is_64_kib(self, redactor: Redactor) -> None:
        """By default a string is scanned up to 64 KiB, then cut with a count."""
        text = " ".join(["word"] * 20_000)  # 99,999 characters

        redacted = redactor.redact_text(text)

        head, marker = redacted.split("...")
        assert 64 * 1024 - 5 <= len(head) <= 64 * 1024
        assert f"[TRUNCATED {len(text) - len(head)} chars]" == marker

    def test_pydantic_v2_models_use_model_dump(self, redactor: Redactor) -> None:
        """A v2 model is read with model_dump, never v1's deprecated dict()."""
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            redacted = redactor.redact(DeprecatedDictModel())

        assert {"name": "m", "api_key": REDACTED} == redacted


KEYS = st.sampled_from(
    ["meeting_id", "title", "seats", "event", "token", "password", "email", "user", "n"]
) | st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=10)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.sampled_from(
        ["Standup", "meeting.created", "hunter2", "bob@example.com", "4111111111111111"]
    ),
    st.sampled_from(["ghp_" + "a" * 36, "Bearer abc.def.ghi", str(uuid.UUID(int=7))]),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300)
@given(event=st.dictionaries(KEYS, VALUES, max_size=6), warm=st.booleans())
def test_harmless_keys_and_clean_values_mean_the_event_comes_out_unchanged(
    event: dict[str, Any], warm: bool
) -> None:
    # The fast path skips the processor for such events: that is only sound while the
    # processor would change nothing in them.
    redactor = Redactor()
    if warm:  # strings found clean once are then known clean
        redactor(None, "info", dict(event))
    shortcut = redactor.harmless_keys(event) and redactor.clean_values(event.values())
    out = redactor(None, "info", dict(event))
    if shortcut:
        assert event == out
        assert list(event) == list(out)


def test_secret_names_and_unknown_strings_are_not_taken_for_clean() -> None:
    redactor = Redactor()
    assert (True, False, False) == (
        redactor.harmless_keys(["meeting_id", "title"]),
        redactor.harmless_keys(["title", "password"]),
        redactor.clean_values(["ghp_" + "a" * 36]),
    )
