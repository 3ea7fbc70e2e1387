"""The post-call webhook's rules, pure: its options, what an HTTP answer means, when to try again,
and the signature of a body. outputs/webhook.py applies them to the queue in the database."""
from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import BinaryIO, Callable, Optional, Union
from urllib.parse import urlparse

from ..backoff import Backoff
from ..logsafe import shown_url

DELIVERED, RETRY, FAILED = "delivered", "retry", "failed"
RETRY_STATUSES = frozenset({408, 429})  # and every 5xx
RETRY_AFTER_STATUSES = frozenset({429, 503})
RETRY_AFTER_CAP_S = 3600.0  # a receiver asking for more is asked again in an hour


@dataclass(frozen=True)
class WebhookOptions:
    url: str
    secret: str = field(default="", repr=False)  # HMAC-SHA256 key; empty: bodies not signed
    timeout_s: float = 10.0  # one POST, connect to last byte
    max_age_s: float = 86400.0  # a delivery still failing this long after its call ended: failed
    backoff: Backoff = Backoff()
    poll_s: float = 1.0  # how often the queue is looked at when nothing wakes the worker
    batch: int = 4  # deliveries claimed (and POSTed concurrently) at once
    reconcile_s: float = 10.0  # how often ended calls without a delivery are queued
    catch_up_s: float = 3600.0  # ... looking this far back at when calls ended

    def __post_init__(self) -> None:
        check_url(self.url)

    @property
    def lease_s(self) -> float:
        """How long a claimed delivery is this bridge's: past it (the bridge died mid-POST) any
        bridge may claim it again."""
        return self.timeout_s + 30.0


def check_url(url: str) -> str:
    """The URL if it is an absolute http:// or https:// URL with a host; else ValueError."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"webhook URL {shown_url(url)!r}: expected http://HOST/... or "
                         "https://HOST/...")
    if parsed.username is not None:
        raise ValueError(f"webhook URL {shown_url(url)!r}: user:password@ is not supported; the "
                         "receiver can check the signature (--webhook-secret) instead")
    try:
        parsed.port  # noqa: B018 - raises on a bad port
    except ValueError as error:
        raise ValueError(f"webhook URL {shown_url(url)!r}: {error}") from None
    return url


def classify(status: Optional[int]) -> str:
    """DELIVERED for 2xx; RETRY for no answer (None: connection refused, reset, timed out), 408,
    429 and 5xx; FAILED for the rest (3xx are not followed, other 4xx will not get better)."""
    if status is None or status in RETRY_STATUSES or 500 <= status <= 599:
        return RETRY
    return DELIVERED if 200 <= status <= 299 else FAILED


def retry_after_s(status: Optional[int], header: Optional[str], now: datetime) -> Optional[float]:
    """The wait a 429 or 503 asks for in Retry-After (seconds or an HTTP date), capped; None
    when there is none or it cannot be read."""
    if status not in RETRY_AFTER_STATUSES or not header:
        return None
    text = header.strip()
    if text.isdigit():
        return min(float(text), RETRY_AFTER_CAP_S)
    try:
        wait_s = (parsedate_to_datetime(text) - now).total_seconds()
    except (TypeError, ValueError):
        return None
    return min(max(0.0, wait_s), RETRY_AFTER_CAP_S)


def next_delay_s(backoff: Backoff, failures: int, asked_s: Optional[float],
                 draw: Callable[[], float] = random.random) -> float:
    """The wait before the next try: the backoff's, or longer when the receiver asked for it."""
    return max(backoff.delay_s(failures, draw), asked_s or 0.0)


def signature(secret: str, body: Union[bytes, BinaryIO]) -> str:
    """The X-Transcript-Signature value: 'sha256=' and the hex HMAC-SHA256 of the body (bytes,
    or a binary file read in chunks from its start and left there)."""
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
    if isinstance(body, bytes):
        mac.update(body)
    else:
        body.seek(0)
        for chunk in iter(lambda: body.read(65536), b""):
            mac.update(chunk)
        body.seek(0)
    return "sha256=" + mac.hexdigest()


@dataclass(frozen=True)
class PostResult:
    """What one POST got: an HTTP status, or None with the error when no answer came."""
    status: Optional[int]
    retry_after: Optional[str] = None  # the Retry-After header, if any
    error: str = ""


@dataclass(frozen=True)
class Verdict:
    state: str  # DELIVERED, RETRY (after delay_s) or FAILED
    delay_s: float = 0.0
    error: Optional[str] = None  # kept as the delivery's last_error


def judge(result: PostResult, attempts: int, age_s: float, options: WebhookOptions,
          now: datetime, draw: Callable[[], float] = random.random) -> Verdict:
    """What follows the `attempts`-th POST of a delivery queued `age_s` ago."""
    kind = classify(result.status)
    error = result.error or (f"HTTP {result.status}" if result.status is not None else "no answer")
    if kind == DELIVERED:
        return Verdict(DELIVERED)
    if kind == FAILED:
        return Verdict(FAILED, error=error)
    asked_s = retry_after_s(result.status, result.retry_after, now)
    delay_s = next_delay_s(options.backoff, attempts, asked_s, draw)
    if age_s + delay_s > options.max_age_s:
        return Verdict(FAILED, error=f"{error}; gave up after {attempts} attempt(s) over "
                                     f"{age_s:.0f} s (max age {options.max_age_s:g} s)")
    return Verdict(RETRY, delay_s, error)
