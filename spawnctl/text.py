"""Text shown to a person on a terminal or in a page, made safe to show.

The runner's and the server's one rule (``core.text`` re-exports it): it lives here because the
runner imports nothing of the server."""

from __future__ import annotations

import unicodedata


def printable(text: object) -> str:
    """``text`` with every control or format character (escape sequences, carriage returns,
    bidirectional overrides) replaced by its ``\\uXXXX`` escape, so a name or reason written
    by a client cannot move the cursor, recolour or rewrite a terminal. Newlines and tabs are
    kept: multi-line output stays readable."""
    out = []
    for char in str(text):
        if char in "\n\t" or unicodedata.category(char) not in ("Cc", "Cf", "Cs"):
            out.append(char)
        else:
            out.append(f"\\u{ord(char):04x}")
    return "".join(out)
