"""Who may read transcripts over HTTP (the caption stream, the stored calls, search).

Default deny: with neither a token (``--http-token-file``) nor ``--http-no-auth`` every such
request is refused. With a token a request must carry it, as ``Authorization: Bearer TOKEN`` or
(for a browser's WebSocket and download links, which cannot set headers) ``?token=TOKEN``;
compared in constant time. Behind a reverse proxy that does the call centre's own login, the proxy
adds the header (docs/captions.rst).
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Mapping, Optional

MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class HttpAccess:
    token: Optional[str] = field(default=None, repr=False)
    open_access: bool = False  # --http-no-auth: anyone who reaches the port reads transcripts

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < MIN_TOKEN_CHARS:
            raise ValueError(f"the HTTP token must have at least {MIN_TOKEN_CHARS} characters")

    def __repr__(self) -> str:
        return f"HttpAccess(token={'***' if self.token else None}, open_access={self.open_access})"

    @property
    def enabled(self) -> bool:
        return self.open_access or bool(self.token)

    def allows(self, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        if self.open_access:
            return True
        if not self.token:
            return False
        given = bearer(headers.get("Authorization", "")) or query.get("token", "")
        return hmac.compare_digest(given.encode("utf-8"), self.token.encode("utf-8"))


def bearer(header: str) -> str:
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""
