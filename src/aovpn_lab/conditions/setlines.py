"""Configuration printed as `set ...` lines (Junos `| display set`, PAN-OS config-output-format set).

    >>> words('set a b [ x y ] c "two words"')
    ['set', 'a', 'b', '[', 'x', 'y', ']', 'c', 'two words']
    >>> members(['[', 'x', 'y', ']'])
    ['x', 'y']
"""
from __future__ import annotations

import shlex


def words(line: str) -> list[str]:
    return shlex.split(line)


def members(rest: list[str]) -> list[str]:
    """A value or a bracketed list of values."""
    if rest and rest[0] == "[":
        return [w for w in rest[1:] if w != "]"]
    return rest[:1]


def lines(text: str) -> list[list[str]]:
    """The words of every `set` line, without the leading 'set'."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("set "):
            try:
                out.append(words(line)[1:])
            except ValueError:
                continue        # an unbalanced quote: not a line this model needs
    return out
