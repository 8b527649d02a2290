"""Text shown to a person on a terminal or in a page, made safe to show.

The rule is defined once, in ``spawnctl.text``: the runner must work without the server's
packages, so it cannot import this one; the server shows text by the same rule."""

from __future__ import annotations

from spawnctl.text import printable

__all__ = ["printable"]
