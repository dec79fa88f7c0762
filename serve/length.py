"""The recording length as a person writes it: "10:00" (mm:ss), "1:30:00" (h:mm:ss), "90s", "30min", "2h",
"1.5 h", or a plain number of seconds."""
from __future__ import annotations

import math
import re

_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hr": 3600.0}
_NUMBER = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-z]*)$")
_CLOCK = re.compile(r"^(\d+):([0-5]\d)(?::([0-5]\d))?$")


def parse_length(text: str | float | int) -> float:
    """Seconds of `text`; ValueError (its message fit for the user) when it is not a length."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        t = str(text).strip().lower()
        clock, number = _CLOCK.match(t), _NUMBER.match(t)
        if clock:
            a, b, c = clock.groups()
            seconds = int(a) * 60.0 + int(b) if c is None else int(a) * 3600.0 + int(b) * 60.0 + int(c)
        elif number and number.group(2) in ("", *_UNITS):
            seconds = float(number.group(1)) * _UNITS.get(number.group(2), 1.0)
        else:
            raise ValueError(f"{str(text)[:40]!r} is not a length (write mm:ss, h:mm:ss, 90s, 30min or 2h)")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be more than 0 seconds (got {text!r:.40})")
    return seconds
