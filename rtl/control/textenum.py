"""A plain :class:`enum.IntEnum` whose members carry a documented ``text`` (Amaranth takes it as
a shape; the board's firmware imports it without Amaranth)."""

from __future__ import annotations

import enum

__all__ = ["TextIntEnum"]


class TextIntEnum(enum.IntEnum):
    """Members are declared ``NAME = value, "text"``."""

    def __new__(cls, value: int, text: str):
        member = int.__new__(cls, value)
        member._value_ = value
        member.text = text
        return member
