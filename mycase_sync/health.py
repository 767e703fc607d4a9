"""The MyCase connection as the state store records it, and what is wrong with it.

`status` and `auth status` both read it from here, so the two say the same thing in the same words.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mycase_sync.redact import redact
from mycase_sync.values import parse_iso

REFRESH_WARNING = dt.timedelta(days=3)  # a refresh token lives 14 days: 11 without a refresh means cron stopped

NOT_CONNECTED: dict[str, Any] = {
    "connected": False, "needs_reauth": False, "reauth_reason": None, "user": None, "user_email": None,
    "firm": None, "access_expires_at": None, "refresh_expires_at": None, "last_refresh_at": None, "connected_at": None,
}


def connection_summary(store) -> dict[str, Any]:
    """Who is connected to which firm and when the tokens expire (never a token); NOT_CONNECTED
    without a store or a connection."""
    row = store.tokens.read() if store is not None else None
    if not row:
        return dict(NOT_CONNECTED)
    return {
        "connected": not row.get("needs_reauth"),
        "needs_reauth": bool(row.get("needs_reauth")),
        "reauth_reason": redact(row["reauth_reason"]) if row.get("reauth_reason") else None,
        "user": row.get("user_name") or row.get("user_email"),
        "user_email": row.get("user_email"),
        "firm": row.get("firm_name"),
        "access_expires_at": row.get("expires_at"),
        "refresh_expires_at": row.get("refresh_expires_at"),
        "last_refresh_at": row.get("last_refresh_at"),
        "connected_at": row.get("obtained_at"),  # when `auth` made this connection
    }


def connection_problem(conn: dict[str, Any], now: dt.datetime) -> str | None:
    """The one line that says what is wrong with the connection, or None when nothing is."""
    refresh_expires = parse_iso(conn.get("refresh_expires_at"))
    if conn.get("needs_reauth"):
        return "MyCase authorization expired or revoked: run `mycase-sync auth`"
    if not conn.get("connected"):
        return "MyCase is not connected: run `mycase-sync auth`"
    if refresh_expires and refresh_expires <= now:
        return (f"MyCase authorization expired {refresh_expires:%Y-%m-%d %H:%M} UTC (nothing refreshed it:"
                " is cron running?): run `mycase-sync auth`")
    if refresh_expires and refresh_expires - now < REFRESH_WARNING:
        return (f"MyCase authorization expires {refresh_expires:%Y-%m-%d %H:%M} UTC (nothing refreshed it:"
                " is cron running?): run any job, or `mycase-sync auth`")
    return None


def format_when(value: str | None, zone: str = " UTC") -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM UTC', short enough for a table."""
    moment = parse_iso(value)
    return f"{moment.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M}{zone}" if moment else "never"


def connected_line(who: dict[str, Any]) -> str:
    """What `auth` says once connected: who, and to which firm."""
    email = f" <{who['user_email']}>" if who.get("user_email") else ""
    return f"Connected to MyCase as {who.get('user_name') or '?'}{email}, firm {who.get('firm_name') or '?'}."
