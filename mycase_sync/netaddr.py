"""Which host a URL names: one answer for the settings check, the HTTP layer and the clients.

A host is loopback when the resolver would take it there: `localhost`, any `*.localhost`, and
every spelling of a loopback address (127.0.0.1, 127.1, 2130706433, 0x7f.0.0.1, ::1).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


def is_loopback(host: str | None) -> bool:
    host = (host or "").rstrip(".")  # "localhost." resolves like "localhost"
    address = literal_address(host)
    return host == "localhost" or host.endswith(".localhost") or (address is not None and address.is_loopback)


def is_loopback_url(url: str) -> bool:
    """The URL's host is loopback (see is_loopback)."""
    return is_loopback(urlsplit(url).hostname)


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, in every spelling the resolver accepts (127.1, 2130706433, 0x7f.0.0.1)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and set(host.lower()) <= set("0123456789abcdefx."):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None
