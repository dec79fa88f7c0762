"""Lengths of time as people write them: `90s`, `30min`, `2h`, `1h30m`, `1.5h`, `45:00`, `1:30:00`.

`parse_duration(text, where)` -> seconds (a float > 0, at most MAX_DURATION_S); `parse_offset` is the same
but admits 0 (a start time in a schedule). Units: s / sec / second(s), m / min / minute(s), h / hr / hour(s),
d / day(s), case-insensitive, several terms added up (`1h30m`, `1h 30min 10s`); a bare number is seconds;
`mm:ss` and `hh:mm:ss` with minutes and seconds below 60. Anything else, 0 (for a duration), a negative
length, a non-finite number or a length over the limit is a UserError naming `where`.
"""
from __future__ import annotations

import math
import re

from .errors import UserError

MAX_DURATION_S = 48 * 3600.0      # 48 hours: longer than any monitored labour or Holter day

_UNITS = {"s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
          "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
          "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
          "d": 86400.0, "day": 86400.0, "days": 86400.0}
_TERM = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]+)\s*")
_CLOCK = re.compile(r"(?:(\d+):)?(\d+):(\d{1,2}(?:\.\d*)?)")


def _clock(text: str, where: str) -> float | None:
    """`mm:ss` or `hh:mm:ss` -> seconds, None when the text is not of that shape."""
    m = _CLOCK.fullmatch(text)
    if m is None:
        return None
    h, mi, s = int(m.group(1) or 0), int(m.group(2)), float(m.group(3))
    if s >= 60 or (m.group(1) is not None and mi >= 60):
        raise UserError(where, f"{text!r}: minutes and seconds of a clock time must be below 60")
    return h * 3600.0 + mi * 60.0 + s


def _terms(text: str, where: str) -> float:
    """`2h`, `1h30m`, `90` -> seconds; UserError when any part is not a number with a known unit."""
    try:
        return float(text)  # a bare number: seconds
    except ValueError:
        pass
    total, pos = 0.0, 0
    low = text.lower()
    while pos < len(low):
        m = _TERM.match(low, pos)
        if m is None or m.group(2) not in _UNITS:
            raise UserError(where, f"{text!r} is not a length of time (examples: 90s, 30min, 2h, 1h30m, "
                                   "45:00, 1:30:00)")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total


def parse_offset(text: object, where: str) -> float:
    """A length of time in seconds, 0 allowed (e.g. a schedule row's start time)."""
    t = str(text).strip()
    if not t or len(t) > 64:
        raise UserError(where, f"expected a length of time such as 90s, 30min, 2h or 45:00 (got {t[:64]!r})")
    seconds = _clock(t, where)
    if seconds is None:
        seconds = _terms(t, where)
    if not math.isfinite(seconds) or seconds < 0:
        raise UserError(where, f"{t!r} must be a finite length of time >= 0")
    if seconds > MAX_DURATION_S:
        raise UserError(where, f"{t!r} is {seconds / 3600:,.1f} hours; at most {MAX_DURATION_S / 3600:g} hours")
    return seconds


def parse_duration(text: object, where: str) -> float:
    """A duration in seconds, > 0 and at most MAX_DURATION_S (`90s`, `30min`, `2h`, `1h30m`, `mm:ss`)."""
    seconds = parse_offset(text, where)
    if seconds <= 0:
        raise UserError(where, f"{str(text).strip()!r} is no time at all; give a length > 0 (e.g. 30min)")
    return seconds
