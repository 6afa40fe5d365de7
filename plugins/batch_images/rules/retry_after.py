"""How a Retry-After header reads: one never-raising parser for the waits and the SDK clients' retry policy
(pure: no Airflow, no Azure SDK).

Azure (or a gateway in front of it) sends delta-seconds (``"30"``, ``"2.5"``), an HTTP date, the
``retry-after-ms`` / ``x-ms-retry-after-ms`` headers, and sometimes a comma-joined list (``"81,120"``,
two headers folded into one by a proxy). azure-core 1.41's ``parse_retry_after``
(``pipeline/policies/_utils.py``) raises ``ValueError("Invalid HTTP date")`` on a list or garbage, which is
not an ``AzureError`` and escaped our waits and tasks as a crash (issue 8 item 1).
"""

from __future__ import annotations

import datetime
import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any

# No single Retry-After is honoured beyond this (a proxy's "86400" must not park a wait for a day).
MAX_RETRY_AFTER_SECONDS = 600.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After value asks for, capped at :data:`MAX_RETRY_AFTER_SECONDS`; None if unusable.

    Accepts delta-seconds (``"30"``, ``"2.5"``), an HTTP date, and a comma-separated list of those (the
    largest wins). Negative, NaN, empty and unreadable values give None. Never raises.
    """
    text = (value or "").strip()
    if not text:
        return None
    now = time.time() if now is None else now

    def one(part: str) -> float | None:
        part = part.strip()
        if not part:
            return None
        try:
            seconds = float(part)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(part)
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
            if when is None:
                return None
            if when.tzinfo is None:  # RFC 9110 dates are GMT
                when = when.replace(tzinfo=datetime.timezone.utc)
            seconds = max(when.timestamp() - now, 0.0)
        if math.isnan(seconds) or seconds < 0:
            return None
        return min(seconds, MAX_RETRY_AFTER_SECONDS)

    whole = one(text)  # an HTTP date contains a comma itself: try the whole value first
    if whole is not None:
        return whole
    parts = [p for p in (one(x) for x in text.split(",")) if p is not None]
    return max(parts) if parts else None


def retry_after_from_headers(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds the headers ask to wait: ``retry-after-ms``, ``x-ms-retry-after-ms``, then ``Retry-After``
    (header names case-insensitive); None when absent or unusable. Never raises."""
    if not headers:
        return None
    try:
        folded = {str(k).lower(): v for k, v in headers.items()}
        for name in ("retry-after-ms", "x-ms-retry-after-ms"):
            ms = parse_retry_after(folded.get(name))
            if ms is not None:
                return min(ms / 1000.0, MAX_RETRY_AFTER_SECONDS)
        return parse_retry_after(folded.get("retry-after"))
    except Exception:  # a headers object that cannot even be read: treat as absent
        return None
