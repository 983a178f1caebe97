"""Random strings that match a regular expression, for measuring recall (`tools.recall`).

A small sampler over Python's own regex parser: it walks the parsed pattern and picks, at
random, one branch of each alternation, one count of each repetition and one character of
each class. Look-arounds and anchors are not generated; callers check each sample with the
compiled pattern and draw again when one does not match.

Choices, so that samples read like text a program could log:

- ``\\s`` (and whitespace in a class) is a space or a tab, not a line break or a form feed.
- ``.`` and negated classes draw from printable ASCII, but a ``.`` between two literal
  characters is a dot (gitleaks' patterns write the dots of host names and method calls
  unescaped: ``hooks.slack.com``, ``MailchimpSDK.initialize``).
- An unbounded repetition repeats at most 24 more times than its minimum.
- Under ``(?i)`` each letter is upper or lower case at random.

`go_to_python` translates the few Go (RE2) constructs of gitleaks' rules that Python spells
differently.
"""

from __future__ import annotations

import importlib
import random
import re
import string
from typing import Any, Final

# The parser Python's re compiles with (private modules, untyped: read through Any).
sre_parse: Any = importlib.import_module("re._parser")
sre_constants: Any = importlib.import_module("re._constants")

__all__ = ["Sampler", "go_to_python"]

_PRINTABLE: Final = [c for c in string.printable if c not in "\t\n\r\x0b\x0c"]
_SPACE: Final = [" ", "\t"]
_DIGIT: Final = list(string.digits)
_WORD: Final = list(string.ascii_letters + string.digits + "_")
_UNBOUNDED_EXTRA: Final = 24
_POSIX: Final = {
    "[:alnum:]": "A-Za-z0-9",
    "[:alpha:]": "A-Za-z",
    "[:digit:]": "0-9",
    "[:lower:]": "a-z",
    "[:upper:]": "A-Z",
    "[:xdigit:]": "0-9A-Fa-f",
}


def go_to_python(pattern: str) -> str:
    """Return *pattern*, a Go regular expression, in Python's syntax.

    ``\\z`` becomes ``\\Z``, POSIX classes (``[[:alnum:]]``) become ranges, and an inline
    ``(?i)`` after the start (Python accepts global flags only there) becomes a scoped
    ``(?i:...)`` group closed where its enclosing group closes.
    """
    for posix, ranges in _POSIX.items():
        pattern = pattern.replace(posix, ranges)
    pattern = pattern.replace(r"\z", r"\Z")
    out: list[str] = []
    closers: list[int] = [0]  # per open group: scoped flag groups to close with it
    i = 0
    in_class = False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            if pattern[i + 1 : i + 2] == "^":
                out.append("^")
                i += 1
            if pattern[i + 1 : i + 2] == "]":  # a literal "]" first in a class
                out.append("]")
                i += 1
            i += 1
            continue
        if pattern.startswith("(?i)", i) and i > 0:
            out.append("(?i:")
            closers[-1] += 1
            i += 4
            continue
        if ch == "(":
            closers.append(0)
        elif ch == ")":
            out.append(")" * closers.pop())
        elif ch == "|" and closers[-1]:
            # An alternation inside the scope ends it: close, and reopen in the next branch.
            out.append(")" * closers[-1] + "|")
            closers[-1] = 0
            i += 1
            continue
        out.append(ch)
        i += 1
    out.append(")" * closers[0])
    return "".join(out)


class Sampler:
    """Draw random strings from one compiled pattern's parse tree."""

    def __init__(self, pattern: str, rng: random.Random) -> None:
        self.rng = rng
        self.tree: Any = sre_parse.parse(pattern)
        self._groups: dict[int, str] = {}

    def sample(self) -> str:
        """Return one string drawn from the pattern (not checked against it)."""
        self._groups = {}
        ignore = bool(self.tree.state.flags & re.IGNORECASE)
        return "".join(self._seq(self.tree, ignore))

    def _seq(self, items: Any, ignore: bool) -> list[str]:
        out: list[str] = []
        literal = sre_constants.LITERAL
        for i, (op, arg) in enumerate(items):
            between_literals = 0 < i < len(items) - 1 and (
                items[i - 1][0] is literal and items[i + 1][0] is literal
            )
            if op is sre_constants.ANY and between_literals:
                out.append(".")  # a dot written unescaped: "hooks.slack.com"
                continue
            out.extend(self._node(op, arg, ignore))
        return out

    def _case(self, ch: str, ignore: bool) -> str:
        if ignore and ch.isalpha():
            return ch.upper() if self.rng.random() < 0.5 else ch.lower()
        return ch

    def _node(self, op: Any, arg: Any, ignore: bool) -> list[str]:
        c = sre_constants
        rng = self.rng
        if op is c.LITERAL:
            return [self._case(chr(arg), ignore)]
        if op is c.NOT_LITERAL:
            return [rng.choice([x for x in _PRINTABLE if x != chr(arg)])]
        if op is c.ANY:
            return [rng.choice(_PRINTABLE)]
        if op is c.IN:
            return [self._case(rng.choice(self._class(arg)), ignore)]
        if op is c.BRANCH:
            return self._seq(rng.choice(arg[1]), ignore)
        if op is c.SUBPATTERN:
            group, add, remove, sub = arg
            scoped = (ignore or bool(add & re.IGNORECASE)) and not remove & re.IGNORECASE
            text = "".join(self._seq(sub, scoped))
            if group is not None:
                self._groups[group] = text
            return [text]
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            low, high, sub = arg
            if high is c.MAXREPEAT:
                high = low + _UNBOUNDED_EXTRA
            count = rng.randint(low, high)
            out: list[str] = []
            for _ in range(count):
                out.extend(self._seq(sub, ignore))
            return out
        if op is c.GROUPREF:
            return [self._groups.get(arg, "")]
        if op is getattr(c, "ATOMIC_GROUP", None):
            return self._seq(arg, ignore)
        if op is c.CATEGORY:
            return [rng.choice(self._category(arg))]
        return []  # AT, ASSERT, ASSERT_NOT: nothing to emit

    def _category(self, cat: Any) -> list[str]:
        c = sre_constants
        if cat is c.CATEGORY_DIGIT:
            return _DIGIT
        if cat is c.CATEGORY_SPACE:
            return _SPACE
        if cat is c.CATEGORY_WORD:
            return _WORD
        if cat is c.CATEGORY_NOT_DIGIT:
            return [x for x in _PRINTABLE if x not in _DIGIT]
        if cat is c.CATEGORY_NOT_SPACE:
            return _PRINTABLE
        if cat is c.CATEGORY_NOT_WORD:
            return [x for x in _PRINTABLE if x not in _WORD]
        return _PRINTABLE

    def _class(self, items: Any) -> list[str]:
        c = sre_constants
        chars: set[str] = set()
        negate = False
        for op, arg in items:
            if op is c.NEGATE:
                negate = True
            elif op is c.LITERAL:
                chars.add(chr(arg))
            elif op is c.RANGE:
                low, high = arg
                chars.update(chr(x) for x in range(low, min(high, 0x7E) + 1))
            elif op is c.CATEGORY:
                chars.update(self._category(arg))
        if negate:
            return [x for x in _PRINTABLE if x not in chars]
        # Whitespace in a class follows the rule for \s: spaces and tabs only.
        usable = sorted(x for x in chars if x not in "\n\r\x0b\x0c")
        return usable or sorted(chars)
