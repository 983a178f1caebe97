"""Card numbers: brand prefixes and lengths, Luhn, digit runs that are kept."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mina.redaction import REDACTED, Redactor


def _check_digit(prefix: str) -> str:
    """Return *prefix* followed by its Luhn check digit."""
    total = 0
    for i, ch in enumerate(reversed(prefix)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return prefix + str(-total % 10)


def _luhn_ok(digits: str) -> bool:
    return _check_digit(digits[:-1]) == digits


def _brand_ok(digits: str) -> bool:
    """The test's own IIN and length table (written apart from mina.redaction's)."""
    n = len(digits)
    p2, p3, p4 = int(digits[:2]), int(digits[:3]), int(digits[:4])
    rules = [
        (digits[0] == "4", n in (13, 16, 19)),  # Visa
        (51 <= p2 <= 55 or 2221 <= p4 <= 2720, n == 16),  # Mastercard
        (p2 in (34, 37), n == 15),  # Amex
        (p2 in (36, 38, 39) or 300 <= p3 <= 305 or p4 == 3095, 14 <= n <= 19),  # Diners
        (3528 <= p4 <= 3589, 16 <= n <= 19),  # JCB
        (p4 == 6011 or p2 in (62, 65) or 644 <= p3 <= 649, 16 <= n <= 19),  # Discover, UnionPay
    ]
    return any(prefix and length for prefix, length in rules)


CARDS = [
    "4111111111111111",  # Visa
    "4012888888881881",
    "4222222222222",  # Visa, 13 digits
    "378282246310005",  # Amex
    "371449635398431",
    "5555555555554444",  # Mastercard
    "5105105105105100",
    "2223003122003222",  # Mastercard 2-series
    "6011111111111117",  # Discover
    "6011000990139424",
    "30569309025904",  # Diners, 14 digits
    "38520000023237",
    "3530111333300000",  # JCB
    "3566002020360505",
    "6200000000000005",  # UnionPay
]
NOT_CARDS = [
    _check_digit("123456781234567"),  # Luhn-valid, no brand starts with 1
    _check_digit("173285634712345678"),  # epoch nanoseconds (19 digits)
    _check_digit("900000000000000"),  # 9: no brand
    _check_digit("41111111111111"),  # Visa prefix, 15 digits
    _check_digit("378282246310005"),  # Amex prefix, 16 digits
    _check_digit("560000000000000"),  # 56: not Mastercard
    _check_digit("272100000000000"),  # 2721: past Mastercard's range
    _check_digit("601200000000000"),  # 6012: not Discover
    "4111111111111112",  # Visa prefix, Luhn fails
]


class TestCards:
    @pytest.mark.parametrize("card", CARDS)
    def test_cards(self, redactor: Redactor, card: str) -> None:
        """Known brands' test numbers are redacted, bare and grouped."""
        grouped = " ".join(card[i : i + 4] for i in range(0, len(card), 4))

        assert f"pay {REDACTED} now" == redactor.redact_text(f"pay {card} now")
        assert f"pay {REDACTED} now" == redactor.redact_text(f"pay {grouped} now")
        assert {"note": REDACTED} == redactor.redact({"note": card})
        assert {"card_number": REDACTED} == redactor.redact({"card_number": card})

    @pytest.mark.parametrize("digits", NOT_CARDS)
    def test_not_cards(self, redactor: Redactor, digits: str) -> None:
        """Luhn-valid digit runs without a brand's prefix and length are kept."""
        assert f"id {digits}" == redactor.redact_text(f"id {digits}")

    @pytest.mark.parametrize(
        "key", ["user_id", "meeting_ids", "requestId", "ts", "time", "created", "start_ns", "t_ms"]
    )
    def test_digit_strings_under_id_and_time_keys(self, redactor: Redactor, key: str) -> None:
        """Under an id or time key a bare digit string is an id, even a card-like one."""
        value = {key: "4111111111111111"}

        assert value is redactor.redact(value)
        assert {key: REDACTED} == redactor.redact({key: "4111 1111 1111 1111"})

    def test_id_keys_with_extra_patterns_are_scanned(self) -> None:
        """With user patterns, digit ids are scanned (the pattern may be about them)."""
        redactor = Redactor(extra_patterns=[r"\b4111\d{12}\b"])

        assert {"user_id": REDACTED} == redactor.redact({"user_id": "4111111111111111"})


@settings(max_examples=300, deadline=None)
@given(digits=st.text(alphabet=string.digits, min_size=13, max_size=19))
def test_digit_runs_without_a_brand_are_never_cards(digits: str) -> None:
    """Random 13-19 digit strings failing the IIN/length (or Luhn) check are kept."""
    assume(not (_brand_ok(digits) and _luhn_ok(digits)))

    assert f"n={digits};" == Redactor().redact_text(f"n={digits};")


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(["4", "51", "55", "2221", "2720", "34", "37", "36", "3095", "3528"])
    | st.sampled_from(["3589", "6011", "644", "649", "65", "62", "300", "305", "38", "39"]),
    digits=st.text(alphabet=string.digits, min_size=19, max_size=19),
    size=st.integers(min_value=13, max_value=19),
)
def test_branded_luhn_valid_runs_are_cards(prefix: str, digits: str, size: int) -> None:
    """Every digit run with a brand's prefix and length and a Luhn check digit goes."""
    card = _check_digit((prefix + digits)[: size - 1])
    assume(_brand_ok(card))

    assert f"n={REDACTED};" == Redactor().redact_text(f"n={card};")
