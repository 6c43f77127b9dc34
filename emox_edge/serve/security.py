"""Who may use the server: the token when one is set; otherwise only this machine's own pages.

With a token (required to listen on anything but loopback), every ``/v1`` request must carry it:
``Authorization: Bearer TOKEN``, or for a WebSocket also ``?token=TOKEN`` (browsers cannot set headers
on a WebSocket). The comparison takes constant time.

Without a token the server listens on loopback only, and a request must name a loopback host (which
stops DNS rebinding) and, when a browser sends an ``Origin``, come from the server's own page (which
stops another web site open in the same browser from driving it).
"""

from __future__ import annotations

import hmac
from typing import Mapping
from urllib.parse import urlsplit

from emox_edge.serve.options import ServeOptions, is_loopback

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; frame-ancestors 'none'")


def _host_name(host: str) -> str:
    """The name of a ``Host`` header or URL netloc, without the port ("[::1]:80" -> "::1")."""
    host = host.strip()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """Checks a request's credentials and origin; ``check`` returns ``(0, "")`` or ``(status, reason)``."""

    def __init__(self, options: ServeOptions) -> None:
        self.token = options.token
        self.response_headers = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                                 "Content-Security-Policy": CSP, "Cache-Control": "no-store"}

    def check(self, headers: Mapping[str, str], *, query: Mapping[str, str] | None) -> tuple[int, str]:
        if self.token is not None:
            return self._check_token(headers, query)
        host = headers.get("host", "")
        if not is_loopback(_host_name(host)):
            return 403, f"this server answers only requests for a loopback host, not {host[:80]!r} (give it --token)"
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
            return 403, f"requests from the page {origin[:80]!r} are refused: only this server's own page may call it"
        return 0, ""

    def _check_token(self, headers: Mapping[str, str], query: Mapping[str, str] | None) -> tuple[int, str]:
        supplied = None
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            supplied = auth[7:].strip()
        elif query is not None:
            supplied = query.get("token")
        if not supplied:
            where = "Authorization: Bearer TOKEN" + (" or ?token=TOKEN" if query is not None else "")
            return 401, f"this server needs a token: send {where}"
        if not hmac.compare_digest(supplied.encode("utf-8", "replace"), self.token.encode("utf-8")):
            return 401, "wrong token"
        return 0, ""
