"""Payment card numbers: a digit run with a known brand's prefix and length, Luhn-valid.

Other digit runs (ids, epoch nanoseconds, phone numbers) are kept, so only runs that can be
a card are redacted.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["CARD", "is_card"]

#: A candidate: 13 to 19 digits, optionally grouped by spaces or dashes. Every card format
#: starts with four digits; requiring them keeps the scan cheap.
CARD: Final = re.compile(r"(?<![0-9A-Za-z])\d{4}(?:[ \-]?\d){9,15}(?![0-9A-Za-z])")


def is_card(digits: str) -> bool:
    """Return whether *digits* (13 to 19) can be a payment card number.

    The issuer prefix (IIN) must be a known brand's and the length valid for that brand, and
    the Luhn check must pass: Visa 4 (13, 16, 19 digits), Mastercard 51-55 and 2221-2720
    (16), Amex 34 and 37 (15), Diners 300-305, 3095, 36, 38, 39 (14-19), JCB 3528-3589,
    Discover 6011, 644-649 and 65, UnionPay 62 (16-19).
    """
    size = len(digits)
    first = digits[0]
    if first == "4":
        valid = size in (13, 16, 19)
    elif first == "5":
        valid = size == 16 and "1" <= digits[1] <= "5"
    elif first == "2":
        valid = size == 16 and 2221 <= int(digits[:4]) <= 2720
    elif first == "3":
        two, four = digits[:2], int(digits[:4])
        if two in ("34", "37"):
            valid = size == 15
        else:
            diners = two in ("36", "38", "39") or 3000 <= four <= 3059 or four == 3095
            jcb = 3528 <= four <= 3589
            valid = (diners and 14 <= size <= 19) or (jcb and 16 <= size <= 19)
    elif first == "6":
        discover = digits.startswith(("6011", "65", "62")) or 644 <= int(digits[:3]) <= 649
        valid = 16 <= size <= 19 and discover
    else:
        valid = False
    return valid and luhn(digits)


def luhn(digits: str) -> bool:
    """Return whether *digits* pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0
