"""Per-call facts learned outside the AudioSocket connection (e.g. from AMI).

The dialplan announces a call (UserEvent AudioSocketStart) before or just after
AudioSocket() connects; the server may wait briefly for that registration.
"""
from __future__ import annotations

import asyncio
import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Optional

from .protocol import canonical_uuid


@dataclass(frozen=True)
class CallOptions:
    """Per-call options set in the dialplan before AudioSocket()."""

    language: Optional[str] = None  # None: the bridge default
    prompt: Optional[str] = None  # initial prompt / hotwords
    partials: Optional[bool] = None  # None: the bridge default
    mode: str = "transcribe"  # or "ivr": bridge sends a hangup frame once the utterance is final
    no_input_timeout_s: Optional[float] = None  # ivr only
    speaker: Optional[str] = None  # label of this stream's talker, e.g. "caller" or "agent" (two-party captions)


@dataclass(frozen=True)
class Registration:
    uuid: str
    channel: Optional[str] = None  # Asterisk channel name, e.g. "PJSIP/alice-00000001"
    uniqueid: Optional[str] = None
    linkedid: Optional[str] = None
    options: CallOptions = field(default_factory=CallOptions)


def _merge(old: Registration, new: Registration) -> Registration:
    """Fields set in `new` override; unset (None) fields keep the old value."""
    def pick(a, b):
        return a if b is None else b

    opts_old, opts_new = old.options, new.options
    default_mode = CallOptions().mode
    options = CallOptions(
        language=pick(opts_old.language, opts_new.language),
        prompt=pick(opts_old.prompt, opts_new.prompt),
        partials=pick(opts_old.partials, opts_new.partials),
        mode=opts_new.mode if opts_new.mode != default_mode else opts_old.mode,
        no_input_timeout_s=pick(opts_old.no_input_timeout_s, opts_new.no_input_timeout_s),
        speaker=pick(opts_old.speaker, opts_new.speaker),
    )
    return Registration(
        uuid=old.uuid,
        channel=pick(old.channel, new.channel),
        uniqueid=pick(old.uniqueid, new.uniqueid),
        linkedid=pick(old.linkedid, new.linkedid),
        options=options,
    )


class CallDirectory:
    """Thread-safe uuid -> Registration map (AMI reader threads call register())."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._registrations: dict[str, Registration] = {}
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future]]] = {}

    def register(self, registration: Registration) -> None:
        key = canonical_uuid(registration.uuid)
        registration = dataclasses.replace(registration, uuid=key)
        with self._lock:
            old = self._registrations.get(key)
            merged = _merge(old, registration) if old else registration
            self._registrations[key] = merged
            waiters = self._waiters.pop(key, [])
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future, merged)

    def get(self, uuid: str) -> Optional[Registration]:
        with self._lock:
            return self._registrations.get(canonical_uuid(uuid))

    async def wait_for(self, uuid: str, timeout_s: float) -> Optional[Registration]:
        key = canonical_uuid(uuid)
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        with self._lock:
            found = self._registrations.get(key)
            if found or timeout_s <= 0:
                return found
            self._waiters.setdefault(key, []).append((loop, future))
        try:
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            self._drop_waiter(key, future)

    def forget(self, uuid: str) -> None:
        with self._lock:
            self._registrations.pop(canonical_uuid(uuid), None)

    def _drop_waiter(self, key: str, future: asyncio.Future) -> None:
        with self._lock:
            waiters = self._waiters.get(key, [])
            waiters[:] = [(lp, f) for lp, f in waiters if f is not future]
            if not waiters:
                self._waiters.pop(key, None)


def _resolve(future: asyncio.Future, registration: Registration) -> None:
    if not future.done():
        future.set_result(registration)
