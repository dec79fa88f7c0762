"""Reproducible outputs: the same input and seed give the same bytes, so users can compare sha256 sums.

Only wall-clock time differs between two identical runs, so no file carries it unless asked to: with
`SOURCE_DATE_EPOCH` set (the reproducible-builds convention: seconds since 1970 UTC) outputs are stamped
with that time, otherwise they carry no creation time at all.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Optional

from .errors import UserError


def stamp_time() -> Optional[str]:
    """ISO 8601 UTC time from SOURCE_DATE_EPOCH, or None when it is unset (leave the stamp out)."""
    text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise UserError("SOURCE_DATE_EPOCH", f"must be whole seconds since 1970 (got {text!r})")
    return datetime.fromtimestamp(int(text), timezone.utc).isoformat(timespec="seconds")
