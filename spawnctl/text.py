"""Text shown to a person on a terminal or in a page, made safe to show.

The runner's and the server's one rule (``core.text`` re-exports it): it lives here because the
runner imports nothing of the server."""

from __future__ import annotations

import unicodedata

# Line and paragraph separators: no terminal control, but a log reader or ``splitlines``
# starts a new line at them, so a value could still forge a line of its own.
_LINE_BREAKING = ("Zl", "Zp")


def printable(text: object) -> str:
    """``text`` with every control or format character (escape sequences, carriage returns,
    bidirectional overrides) replaced by its ``\\uXXXX`` escape, so a name or reason written
    by a client cannot move the cursor, recolour or rewrite a terminal. Newlines and tabs are
    kept: multi-line output stays readable."""
    return _escaped(text, keep="\n\t")


def one_line(text: object) -> str:
    """``printable``, newlines and tabs escaped too: for a line that carries a value from
    elsewhere (a server's name, reason or error), which must stay that one line, so a value
    holding ``"\\n12:00:00 Session x is complete"`` cannot print a line the runner never
    wrote."""
    return _escaped(text, keep="", escape=_LINE_BREAKING)


def _escaped(text: object, *, keep: str, escape: tuple[str, ...] = ()) -> str:
    out = []
    for char in str(text):
        category = unicodedata.category(char)
        if char in keep or (category not in ("Cc", "Cf", "Cs") and category not in escape):
            out.append(char)
        else:
            out.append(f"\\u{ord(char):04x}")
    return "".join(out)
