"""`RateLimit-*` and `X-RateLimit-*` answer headers, read when a service sends them.

Neither MyCase nor Case Status documents them; many APIs send the IETF draft's (`RateLimit-Policy`
with `RateLimit`, or `RateLimit-Remaining` / `-Reset`) or GitHub's `X-RateLimit-Remaining` / `-Reset`.
Their values are hostile until checked, like any answer: what cannot be read is ignored.
"""

from __future__ import annotations

import re
import time
from typing import Mapping

MAX_WAIT = 120.0  # the longest pause a service's header can impose (as for Retry-After)
_NUMBER = r"(\d+(?:\.\d+)?)"


def rate_limit_hint(headers: Mapping[str, str]) -> tuple[tuple[float, float] | None, float | None, float | None] | None:
    """(policy as (quota, window seconds), remaining, seconds to reset) from an answer's headers, or
    None when it has none. Read: the IETF draft's `RateLimit-Policy: 100;w=60` and `RateLimit:
    r=5;t=30` (or `RateLimit-Remaining` / `RateLimit-Reset`), and the common `X-RateLimit-Remaining`
    / `X-RateLimit-Reset` (seconds, or a Unix time). A value out of bounds is ignored."""
    def get(*names: str) -> str | None:
        for name in names:
            value = headers.get(name)
            if value:
                return value[:200]
        return None

    policy = None
    text = get("RateLimit-Policy", "X-RateLimit-Policy")
    if text:
        quota = re.search(r"(?:^|[;,\s])q=" + _NUMBER, text) or re.match(r"\s*" + _NUMBER, text)
        window = re.search(r"[;,\s]w=" + _NUMBER, text)
        if quota and window and float(quota.group(1)) > 0 and 0 < float(window.group(1)) <= 86400:
            policy = (float(quota.group(1)), float(window.group(1)))
    combined = get("RateLimit") or ""
    remaining = _first(_field(combined, "r"), _number(get("RateLimit-Remaining", "X-RateLimit-Remaining")))
    reset = _first(_field(combined, "t"), _number(get("RateLimit-Reset", "X-RateLimit-Reset")))
    if reset is not None and reset > 1e9:  # a Unix time (GitHub's X-RateLimit-Reset)
        reset -= time.time()
    reset = min(max(reset, 0.0), MAX_WAIT) if reset is not None else None
    if policy is None and remaining is None:
        return None
    return policy, remaining, reset


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _field(text: str, key: str) -> float | None:
    found = re.search(rf"(?:^|[;,\s]){key}={_NUMBER}", text)
    return float(found.group(1)) if found else None


def _number(text: str | None) -> float | None:
    found = re.fullmatch(r"\s*" + _NUMBER + r"\s*", text or "")
    return float(found.group(1)) if found else None
