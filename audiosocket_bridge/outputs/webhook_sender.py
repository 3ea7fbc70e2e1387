"""One webhook POST over HTTP(S) with the standard library (blocking: run it in a thread).

Redirects are not followed: urllib would turn a redirected POST into a GET without the body.
"""
from __future__ import annotations

import http.client
import io
import urllib.error
import urllib.request
from typing import BinaryIO, Optional, Union

from .webhook_policy import PostResult, signature

USER_AGENT = "audiosocket-bridge-webhook/1"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 3xx comes back as an HTTPError: a permanent failure


_OPENER = urllib.request.build_opener(_NoRedirects)


def request_headers(call_uuid: str, body: Union[bytes, BinaryIO], secret: str) -> dict[str, str]:
    """The POST's headers. A body in a file (at its start, and left there) is read in chunks for
    its signature and length."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "Idempotency-Key": call_uuid, "X-Transcript-Call": call_uuid}
    if not isinstance(body, bytes):
        headers["Content-Length"] = str(_length(body))
    if secret:
        headers["X-Transcript-Signature"] = signature(secret, body)
    return headers


def _length(body: BinaryIO) -> int:
    size = body.seek(0, io.SEEK_END)
    body.seek(0)
    return size


def post(url: str, body: Union[bytes, BinaryIO], headers: dict[str, str],
         timeout_s: float) -> PostResult:
    """POST the body (a file: sent as it is read, with request_headers' Content-Length); the
    answer's status, or status None with why no answer came."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            return PostResult(response.status)  # the body, if any, means nothing here
    except urllib.error.HTTPError as answer:
        with answer:
            return PostResult(answer.code, answer.headers.get("Retry-After"),
                              f"HTTP {answer.code} {_reason(answer)}".strip())
    except (OSError, http.client.HTTPException) as error:  # URLError and timeouts are OSErrors
        reason = getattr(error, "reason", None) or error
        return PostResult(None, error=f"{type(error).__name__}: {reason}")


def _reason(answer: urllib.error.HTTPError) -> Optional[str]:
    return answer.reason if isinstance(answer.reason, str) else ""
