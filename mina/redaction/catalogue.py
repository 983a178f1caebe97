"""Secrets recognised by the words beside them: vendor-named assignments and secret words.

`mina.redaction.vendors` holds tokens with a shape of their own (``ghp_...``). Many vendors'
keys have none (32 hex characters, 16 digits): only the name they are assigned to says what
they are. This module finds *assignments* in any text (``name = value``, ``name: value``,
``"name": "value"``, ``name := value``, ``name => value``, ``("name", "value")``, also
inside a ``repr()`` where tabs and line breaks are escapes) and redacts the value when:

- the name holds a vendor's name (`KEYED`: ``ASANA_CLIENT_ID``, ``twitter.bearer``,
  ``okta-token``) and the value has that vendor's format; or
- the name holds a secret word (``password``, ``secret``, ``token``, ``key``, ``auth``,
  ``credential``...) and the value looks random: at least 10 characters with a digit, and
  the Shannon entropy of a random key (3.5 bits per character or more), or, for password
  words, 8 characters that are not a plain word.

Plain ids that only the vendor's name makes recognisable (a 16-digit Asana client id, a
UUID under ``HEROKU_API_KEY``) are redacted when assigned to a name holding the vendor's
name: the name is the only evidence there is, a log reader loses little, and the scanners
treat them the same way. The same value alone, or under another name (``order_id``), is
kept: an id is not a secret by itself.

Also ``curl`` command lines and configuration snippets (`mina.redaction.commands`).

The vendor formats and the generic rule follow gitleaks' rules (MIT licence, copyright
(c) 2019 Zachary Rice; see ``LICENSES/gitleaks.txt``).
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Final

from mina.redaction.commands import others
from mina.redaction.keys import class_name

__all__ = ["KEYED", "assignments", "keyed_value", "names_secret"]

Span = tuple[int, int]

#: (vendor names, value format): gitleaks' "semi-generic" rules. A name is found anywhere
#: in the assignment's name, in any case; the value must be the format exactly (in any
#: case too, as in gitleaks).
KEYED: Final = (
    (("adafruit",), r"[a-z0-9_-]{32}"),
    (("adobe",), r"[a-f0-9]{32}"),
    (("airtable",), r"[a-z0-9]{17}"),
    (("algolia",), r"[a-z0-9]{32}"),
    (("alibaba",), r"[a-z0-9]{30}"),
    (("asana",), r"[0-9]{16}|[a-z0-9]{32}"),
    (("atlassian", "confluence", "jira"), r"[a-z0-9]{20}[a-f0-9]{4}"),
    (("beamer",), r"b_[a-z0-9=_\-]{44}"),
    (("bitbucket",), r"[a-z0-9]{32}|[a-z0-9=_\-]{64}"),
    (("bittrex",), r"[a-z0-9]{32}"),
    (("meraki",), r"[0-9a-f]{40}"),
    (("cloudflare",), r"[a-z0-9_-]{40}|[a-f0-9]{37}"),
    (("codecov",), r"[a-z0-9]{32}"),
    (("cohere", "co_api_key"), r"[a-z0-9]{40}"),
    (("coinbase",), r"[a-z0-9_-]{64}"),
    (("confluent",), r"[a-z0-9]{16}|[a-z0-9]{64}"),
    (("contentful",), r"[a-z0-9=_\-]{43}"),
    (("datadog",), r"[a-z0-9]{40}"),
    (("dnkey",), r"dnkey-[a-z0-9=_\-]{26}-[a-z0-9=_\-]{52}"),
    (("discord",), r"[a-f0-9]{64}|[0-9]{18}|[a-z0-9=_\-]{32}"),
    (("droneci",), r"[a-z0-9]{32}"),
    (
        ("dropbox",),
        r"[a-z0-9]{15}|[a-z0-9]{11}AAAAAAAAAA[a-z0-9\-_=]{43}|sl\.[a-z0-9\-=_]{135}",
    ),
    (("etsy",), r"[a-z0-9]{24}"),
    (("facebook",), r"[a-f0-9]{32}"),
    (("fastly",), r"[a-z0-9=_\-]{32}"),
    (("finicity",), r"[a-f0-9]{32}|[a-z0-9]{20}"),
    (("finnhub",), r"[a-z0-9]{20}"),
    (("flickr",), r"[a-z0-9]{32}"),
    (("freshbooks",), r"[a-z0-9]{64}"),
    (("gitter",), r"[a-z0-9_-]{40}"),
    (("gocardless",), r"live_[a-z0-9\-_=]{40}"),
    (("heroku",), r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    (("hubspot",), r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    (("intercom",), r"[a-z0-9=_\-]{60}"),
    (("jfrog", "artifactory", "bintray", "xray"), r"[a-z0-9]{73}|[a-z0-9]{64}"),
    (("kraken",), r"[a-z0-9/=_+\-]{80,90}"),
    (("kucoin",), r"[a-f0-9]{24}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    (("launchdarkly",), r"[a-z0-9=_\-]{40}"),
    (("linear",), r"[a-f0-9]{32}"),
    (("linkedin", "linked_in", "linked-in"), r"[a-z0-9]{14}|[a-z0-9]{16}"),
    (("lob",), r"(?:live|test)_(?:pub_[a-f0-9]{31}|[a-f0-9]{35})"),
    (("looker",), r"[a-z0-9]{20}|[a-z0-9]{24}"),
    (("mailchimp",), r"[a-f0-9]{32}-us\d\d"),
    (
        ("mailgun",),
        r"key-[a-f0-9]{32}|pubkey-[a-f0-9]{32}|[a-h0-9]{32}-[a-h0-9]{8}-[a-h0-9]{8}",
    ),
    (("mapbox",), r"pk\.[a-z0-9]{60}\.[a-z0-9]{22}"),
    (("mattermost",), r"[a-z0-9]{26}"),
    (
        ("messagebird", "message_bird", "message-bird"),
        r"[a-z0-9]{25}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    ),
    (("netlify",), r"[a-z0-9=_\-]{40,46}"),
    (
        ("new-relic", "newrelic", "new_relic"),
        r"NRJS-[a-f0-9]{19}|NRII-[a-z0-9-]{32}|[a-z0-9]{64}|NRAK-[a-z0-9]{27}",
    ),
    (("nytimes", "new-york-times", "newyorktimes"), r"[a-z0-9=_\-]{32}"),
    (("okta",), r"00[\w=\-]{40}"),
    (
        ("plaid",),
        r"access-(?:sandbox|development|production)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}"
        r"-[0-9a-f]{4}-[0-9a-f]{12}|[a-z0-9]{24}|[a-z0-9]{30}",
    ),
    (("privateai", "private_ai", "private-ai"), r"[a-z0-9]{32}"),
    (("rapidapi",), r"[a-z0-9_-]{50}"),
    (("sendbird",), r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[a-f0-9]{40}"),
    (("sentry",), r"[a-f0-9]{64}"),
    (
        ("bundle_enterprise__contribsys__com", "bundle_gems__contribsys__com"),
        r"[a-f0-9]{8}:[a-f0-9]{8}",
    ),
    (("snyk",), r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    (("sonar",), r"(?:squ_|sqp_|sqa_)?[a-z0-9=_\-]{40}"),
    (("squarespace",), r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    (("sumo",), r"su[a-z0-9]{12}|[a-z0-9]{64}"),
    (("telegr",), r"[0-9]{5,16}:A[a-z0-9_\-]{34}"),
    (("travis",), r"[a-z0-9]{22}"),
    (("twitch",), r"[a-z0-9]{30}"),
    (
        ("twitter",),
        r"[a-z0-9]{45}|[0-9]{15,25}-[a-z0-9]{20,40}|[a-z0-9]{25}|[a-z0-9]{50}"
        r"|A{22}[a-z0-9%]{80,100}",
    ),
    (("typeform",), r"tfp_[a-z0-9\-_.=]{59}"),
    (
        ("yandex",),
        r"t1\.[a-z0-9_-]+={0,2}\.[a-z0-9_-]{86}={0,2}|AQVN[a-z0-9_\-]{35,38}|YC[a-z0-9_\-]{38}",
    ),
    (("zendesk",), r"[a-z0-9]{40}"),
)

# The generic rule's secret words (gitleaks' generic-api-key, plus "pass" and "pwd"), on
# the lower-cased name.
_SECRET_LITERALS: Final = (
    *("access", "auth", "api", "credential", "creds", "key", "pass", "pwd", "secret", "token"),
)
_SECRET_WORD: Final = re.compile(
    r"access|auth|api|credential|creds|key|passw(?:or)?d|secret|token|pwd|pass(?:phrase|code)?\b"
)
_PASSWORD_WORDS: Final = re.compile(r"passw(?:or)?d|pwd|pass(?:phrase|code)?\b")
# Names that hold a secret word but name no secret (gitleaks' generic allowlist, shortened).
_NOT_SECRET_NAME: Final = re.compile(
    r"access(?:ibility|or)|access[_.-]?(?:id|level|log|mode|time)"
    r"|api[_.-]?(?:id|name|version|url|host|base)|rapid|capital|author"
    r"|(?:bucket|foreign|hot|idx|natural|primary|pub(?:lic)?|schema|sequence|sort|cache"
    r"|partition|idempotency|object|s3|row|group|dedup(?:e|lication)?)[_.-]?key"
    r"|turkey|monkey|key[_.-]?(?:alias|board|code|frame|id|length|name|pair|press(?:ed)?|ring"
    r"|size|path|file|type|word|up|down|left|right|s\b)|keying"
    r"|secret[_.-]?(?:length|name|size|path|file)"
    r"|(?:api|credentials|token)[_.-]?(?:endpoint|ur[il]|file|path|type|count)|public[_.-]?token"
)


def _trie(words: Iterable[str]) -> str:
    # One alternation per first letter, nested: the engine tests a position's letter once
    # per branch instead of every word (90 words: 30 times faster than a flat alternation).
    first: dict[str, list[str]] = {}
    ends = False
    for word in sorted(set(words)):
        if word:
            first.setdefault(word[0], []).append(word[1:])
        else:
            ends = True
    parts = [re.escape(c) + _trie(rest) for c, rest in first.items()]
    if not parts:
        return ""
    body = parts[0] if len(parts) == 1 else f"(?:{'|'.join(parts)})"
    return f"(?:{body})?" if ends else body


# Every telling word: a vendor's name or a secret word.
_TELLING: Final = re.compile(
    _trie([n for names, _ in KEYED for n in names] + list(_SECRET_LITERALS))
)
_VALUE_OF: Final = tuple(re.compile(f"(?i:{value})") for _, value in KEYED)
_GENERIC_VALUE: Final = re.compile(r"(?i)[\w.=-]{10,150}|[a-z0-9][a-z0-9+/]{11,}={0,3}")
# A password after a password word: any characters but spaces, quotes, backticks and the
# punctuation that ends a value in text (",;&" and closing brackets); "#", "!", "@"... stay
# in it. Not code (a call or an index).
_PASSWORD_RUN: Final = re.compile(r"[^\s'\"`\\,;&)\]}>]{8,64}(?![^\s'\"`\\,;&)\]}>])")
_BARE: Final = re.compile(r"[^\s'\"`\\,;&)\]}>]{0,64}")
_CODE: Final = re.compile(r"[A-Za-z_][\w.]*[(\[]|[$%{<]")
_IDENTIFIER: Final = re.compile(r"[A-Za-z_.-]+")
_UUID: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_TEMPLATE: Final = re.compile(r"[$%{<]|^\*+$|^x+$", re.I)
# A separator, then quotes, spaces and escapes, then a value: the candidate assignments.
# "\\[tnr]" and "\\" are a repr's escapes (a tab written as two characters, \').
# Each separator starts a candidate; its value is read up to the next separator
# character (so "a=b=c" offers three), then, if the name calls for a rule, extended over
# "=" and ":" (base64 padding, "id:secret") for at most 200 characters: the scan stays
# linear on a text of nested pairs.
_CANDIDATE: Final = re.compile(
    r"(?:[=>:,]|\|\|)(?:\\[tnr]|[\\`'\"\s=:>?|,]){0,16}(?=[^\s'\"`\\]{8})"
)
_VALUE_RUN: Final = re.compile(r"[\w.=+/~%:\-]{1,200}")
# What a candidate reads at most: a separator (2), its fill (16) and a value (200).
_READ_MAX: Final = 218
# What may follow a value: the end, a space, a quote, a repr's escape, or punctuation that
# ends a value in text ("key=abc; next", "f(key=abc)", "?key=abc&b=1").
_VALUE_END: Final = re.compile(r"$|[\s'\"`;,)\]}>&|\\]")
# The name before a separator, read backwards: quotes and separator characters, then
# name characters and spaces (gitleaks: up to 50 name characters and 20 more).
_NAME_BEFORE: Final = re.compile(r"[\s'\"\\?:|=>,]{0,10}([\w.\- \t]{1,72})")
_NAME_CACHE_MAX: Final = 2048
# Texts that may hold an assignment: a separator.
_ASSIGNMENT_HINT: Final = re.compile(r"[=:,>|]")
# Characters between a telling word's end and the separator: 20 name characters, quotes,
# and a repr's escapes of them.
_NAME_GAP: Final = 40
_names: dict[str, tuple[int, ...] | None] = {}
_kept: set[tuple[str, str, int]] = set()


def entropy(text: str) -> float:
    """Shannon entropy of *text*, in bits per character."""
    size = len(text)
    return -sum(n / size * math.log2(n / size) for n in Counter(text).values())


def _rules_for(name: str) -> tuple[int, ...] | None:
    # Which KEYED rules (indexes; -1 the generic, -2 the password rule) a name calls for.
    # Cached: log lines repeat their names.
    rules = _names.get(name)
    if rules is not None or name in _names:
        return rules
    found: list[int] = []
    lower = name.lower()
    ends = [m.end() for m in _TELLING.finditer(lower)]
    # As in gitleaks: at most 20 characters between the name's last telling word and the
    # separator ("twitter api key = ..."), so a sentence is not a name. An exception's
    # class ("raise TokenExpiredError: token=...") is no name: its message follows.
    if ends and len(lower) - ends[-1] <= 20 and not class_name(name.rsplit(None, 1)[-1]):
        found = [i for i, (names, _) in enumerate(KEYED) if any(n in lower for n in names)]
        if _NOT_SECRET_NAME.search(lower) is None and _SECRET_WORD.search(lower):
            found.append(-1)
            if _PASSWORD_WORDS.search(lower):
                found.append(-2)
    rules = tuple(found) or None
    if len(_names) >= _NAME_CACHE_MAX:
        _names.clear()
    _names[name] = rules
    return rules


def names_secret(name: str) -> bool:
    """Return whether a value assigned to *name* is judged by the rules above."""
    return _rules_for(name) is not None


def keyed_value(name: str, value: str) -> bool:
    """Return whether *value*, assigned to *name*, is a secret by the rules above."""
    rules = _rules_for(name)
    if rules is None:
        return False
    # A word (sumOfExposures under "sumo"), a mask or a placeholder (000000..., xxxx...,
    # <YOUR_TOKEN>) is not a key: a random one has a digit and varied characters.
    placeholder = _IDENTIFIER.fullmatch(value) is not None or len(set(value)) < 6
    for i in rules:
        if i >= 0:
            if not placeholder and _VALUE_OF[i].fullmatch(value):
                return True
        elif _random(value, password=i == -2):
            return True
    return False


def _random(value: str, *, password: bool) -> bool:
    # The generic rule: random-looking, not an identifier, not a template or a mask, not
    # a UUID (an id: vendors' UUID keys have their vendor's rule).
    if _IDENTIFIER.fullmatch(value) or _TEMPLATE.search(value) or _UUID.fullmatch(value):
        return False
    if password:
        return len(set(value)) >= 5 and _CODE.match(value) is None
    return (
        _GENERIC_VALUE.fullmatch(value) is not None
        and any(c.isdigit() for c in value)
        and entropy(value) >= 3.5
    )


def _secret_span(text: str, name: str, start: int, run: re.Match[str], pad: int) -> Span | None:
    # The value's span if it is a secret: the run of token characters (with the "=" the
    # separator took), ended where a value ends (as in gitleaks: "2026-12-01T10" in
    # "next_run=2026-12-01T10:00:00Z" is no value); or, for a password word, everything up
    # to a space or a quote ("Xk9#mQ2vLp").
    end = run.end()
    if _VALUE_END.match(text, end) is not None:
        for begin in range(start, start - pad - 1, -1):
            if end - begin >= 8 and keyed_value(name, text[begin:end]):
                return begin, end
    password = _PASSWORD_RUN.match(text, start)
    if password is not None and password.end() > end and _password(name, password.group()):
        return password.span()
    return None


def _password(name: str, value: str) -> bool:
    # A password word's value that runs past the token characters ("Xk9#mQ2vLp").
    rules = _rules_for(name)
    return rules is not None and -2 in rules and _random(value, password=True)


def _name_before(text: str, pos: int) -> str:
    # The assignment's name ending at *pos*, with a repr's \t and \n read as spaces.
    window = text[max(0, pos - 80) : pos]
    if "\\" in window:
        window = window.replace("\\t", " ").replace("\\n", " ").replace("\\r", " ")
    m = _NAME_BEFORE.match(window[::-1])
    return "" if m is None else m.group(1)[::-1].strip()


def assignments(text: str, add: Callable[[Span], object], found: Iterable[Span] = ()) -> None:
    """Call *add* with the span of every secret value assigned in *text* (see above).

    *found* are spans already redacted by other rules: a value inside one is not judged
    again (in nested pairs, ``password: password: ...``, the first pair's value holds every
    other one).
    """
    if len(text) < 10 or _ASSIGNMENT_HINT.search(text) is None:
        return  # shorter than a name, a separator and 8 characters; no separator
    # Telling words first (one pass of a trie over the lower-cased text): a text with none,
    # most clean lines and hostile runs of separators, costs nothing more; a separator with
    # none ending shortly before it is skipped without reading its name.
    ends = [m.end() for m in _TELLING.finditer(text.lower())]
    if not ends:
        return others(text, add)
    covered = _merged(found)
    covered_starts = [a for a, _ in covered]
    pos = 0
    while (m := _CANDIDATE.search(text, pos)) is not None:
        pos = m.end()
        if covered:
            j = bisect.bisect_right(covered_starts, m.start()) - 1
            if j >= 0 and m.start() < covered[j][1] - _READ_MAX:
                # Every value read from here on ends inside that span: skip to near its end.
                pos = max(pos, covered[j][1] - _READ_MAX)
                continue
        i = bisect.bisect_right(ends, m.start())
        if not i or m.start() - ends[i - 1] > _NAME_GAP:
            continue
        start = m.end()
        run = _VALUE_RUN.match(text, start)
        if run is None or run.end() - start == 200:
            continue  # longer than any format: not one (and nested pairs stay linear)
        # Everything the rules may read: the run, or up to a space for a password.
        bare = _BARE.match(text, start)
        stop = max(run.end(), bare.end() if bare else 0)
        if covered:
            j = bisect.bisect_right(covered_starts, start) - 1
            if j >= 0 and covered[j][1] >= stop:
                continue  # redacted already
        name = _name_before(text, m.start())
        if not name or _rules_for(name) is None:
            continue
        # A value may start with "=" (base64 padding of nothing), which the separator took.
        pad = 0
        while pad < 2 and start - pad - 1 > m.start() and text[start - pad - 1] == "=":
            pad += 1
        seen = (name, text[start:stop], pad)
        if seen in _kept:  # judged harmless before: log lines and nested pairs repeat
            continue
        span = _secret_span(text, name, start, run, pad)
        if span is not None:
            add(span)
        else:
            if len(_kept) >= _NAME_CACHE_MAX:
                _kept.clear()
            _kept.add(seen)  # only harmless values: no secret is kept alive here
    others(text, add)


def _merged(spans: Iterable[Span]) -> list[Span]:
    # Sorted, overlapping and touching spans joined.
    out: list[Span] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out
