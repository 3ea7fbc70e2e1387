"""Per-call facts learned outside the AudioSocket connection (e.g. from AMI).

The dialplan announces a call (UserEvent AudioSocketStart) before or just after
AudioSocket() connects; the server may wait briefly for that registration. A
registration is kept for a bounded time (see Registrations), not forever.
"""
from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Protocol

from whisper.grammar import parse_grammar
from whisper.vocabulary import parse_vocabulary
from whisper.language import check_languages

from .values import canonical_uuid
from .redaction import check_policy
from .values import blank_to_none, parse_bool, parse_float

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallOptions:
    """Per-call options set in the dialplan before AudioSocket()."""

    language: Optional[str] = None  # None: the bridge default
    prompt: Optional[str] = None  # initial prompt / hotwords
    partials: Optional[bool] = None  # None: the bridge default
    mode: str = "transcribe"  # or "ivr": bridge sends a hangup frame once the utterance is final
    no_input_timeout_s: Optional[float] = None  # ivr only
    speaker: Optional[str] = None  # label of this stream's talker, e.g. "caller" or "agent" (two-party captions)
    grammar: Optional[str] = None  # IVR grammar (whisper.grammar): "digits:4-10", "yesno", "choices:a|b"
    redact: Optional[str] = None  # redaction.py policy: off | pci | pii; None: the bridge default
    retention_days: Optional[float] = None  # this call is deleted this long after it ended
    conversation: Optional[str] = None  # links the legs of one conversation, e.g. ${CHANNEL(linkedid)}
    alerts: Optional[str] = None  # phrases raising a TranscriptAlert when a final says them: "a|b"
    vocabulary: Optional[str] = None  # custom vocabulary (whisper.vocabulary): "Zorblax|Okonkwo"
    # silence that ends this call's utterances (a slow talker, a noisy line); None: the grammar's,
    # else the engine's endpoint.trailing_silence_s
    end_silence_s: Optional[float] = None

    def __repr__(self) -> str:  # a prompt and a vocabulary may name customers: their lengths only
        shown = dataclasses.asdict(self)
        for name in ("prompt", "vocabulary"):
            if shown[name] is not None:
                shown[name] = f"<{len(shown[name])} chars>"
        return "CallOptions(" + ", ".join(f"{k}={v!r}" for k, v in shown.items() if v is not None) + ")"

    @classmethod
    def from_stored(cls, stored: Mapping[str, object]) -> "CallOptions":
        """From its stored JSON; a field a newer bridge stored and this one lacks is left out (a
        rolling upgrade runs both on one database)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in stored.items() if k in known})

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> "CallOptions":
        """From case-insensitive option fields (UserEvent headers or AGI parameters): language,
        prompt, partials, mode (transcribe|ivr), noinputtimeout or no_input_timeout (seconds),
        speaker, grammar, conversation, alerts (phrases: "cancel my contract|refund"), vocabulary,
        redact (off|pci|pii), retention (days), endsilence or end_silence (seconds). Raises
        ValueError for an unknown mode, grammar, alert or policy, a bad vocabulary, a prompt over
        MAX_PROMPT_CHARS, an end silence out of bounds or a malformed value."""
        lower = {k.lower().replace("_", "").replace("-", ""): v for k, v in fields.items()}
        mode = (blank_to_none(lower.get("mode")) or cls.mode).lower()
        if mode not in ("transcribe", "ivr"):
            raise ValueError(f"unknown mode {mode!r} (use transcribe or ivr)")
        return cls(language=_languages(lower.get("language")),
                   prompt=_bounded("prompt", lower.get("prompt"), MAX_PROMPT_CHARS),
                   partials=parse_bool(lower.get("partials")), mode=mode,
                   no_input_timeout_s=parse_float(lower.get("noinputtimeout")),
                   speaker=_bounded("speaker", lower.get("speaker"), MAX_SPEAKER_CHARS),
                   grammar=_grammar(lower.get("grammar")),
                   conversation=_bounded("conversation", lower.get("conversation"), MAX_SPEAKER_CHARS),
                   alerts=_alerts(lower.get("alerts") or lower.get("alert")),
                   vocabulary=_vocabulary(lower.get("vocabulary")),
                   redact=_policy(lower.get("redact")),
                   retention_days=_retention(lower.get("retention") or lower.get("retentiondays")),
                   end_silence_s=_end_silence(lower.get("endsilence")))


MAX_PROMPT_CHARS = 1000  # Whisper's prompt holds 223 tokens; more is cut by the decoder anyway
MAX_SPEAKER_CHARS = 64


def _bounded(name: str, text: Optional[str], limit: int) -> Optional[str]:
    value = blank_to_none(text)
    if value is not None and len(value) > limit:
        raise ValueError(f"{name} is {len(value)} characters long (at most {limit})")
    return value


def _policy(text: Optional[str]) -> Optional[str]:
    value = blank_to_none(text)
    return check_policy(value) if value is not None else None


def _retention(text: Optional[str]) -> Optional[float]:
    days = parse_float(text)
    if days is not None and not days > 0:
        raise ValueError(f"retention must be a number of days above 0, got {text!r}")
    return days


MIN_END_SILENCE_S, MAX_END_SILENCE_S = 0.2, 5.0


def _end_silence(text: Optional[str]) -> Optional[float]:
    seconds = parse_float(text)
    if seconds is not None and not MIN_END_SILENCE_S <= seconds <= MAX_END_SILENCE_S:
        raise ValueError(f"end silence must be {MIN_END_SILENCE_S:g} to {MAX_END_SILENCE_S:g} seconds, got {text!r}")
    return seconds


def _languages(text: Optional[str]) -> Optional[str]:
    """One language code, or several as candidates ("es|en"); refused at registration if unknown."""
    return check_languages(blank_to_none(text))


def _alerts(spec: Optional[str]) -> Optional[str]:
    from .outputs.alerts import call_rules  # refused at registration, like a grammar

    spec = blank_to_none(spec)
    if spec is not None:
        call_rules(spec)
    return spec


def _grammar(spec: Optional[str]) -> Optional[str]:
    spec = blank_to_none(spec)
    if spec is not None:
        parse_grammar(spec)  # refused at registration, with the rule, not later in the engine
    return spec


def _vocabulary(spec: Optional[str]) -> Optional[str]:
    spec = blank_to_none(spec)
    if spec is not None:
        parse_vocabulary(spec)  # refused at registration, with the rule, not later in the engine
    return spec


@dataclass(frozen=True)
class Registration:
    uuid: str
    channel: Optional[str] = None  # Asterisk channel name, e.g. "PJSIP/alice-00000001"
    uniqueid: Optional[str] = None
    linkedid: Optional[str] = None
    options: CallOptions = field(default_factory=CallOptions)
    server: Optional[str] = None  # name of the AMI server (PBX) the channel lives on


def _merge(old: Registration, new: Registration) -> Registration:
    """Fields set in `new` override; unset (None) fields keep the old value."""
    def pick(a, b):
        return a if b is None else b

    opts_old, opts_new = old.options, new.options
    merged = {f.name: pick(getattr(opts_old, f.name), getattr(opts_new, f.name))
              for f in dataclasses.fields(CallOptions) if f.name != "mode"}
    default_mode = CallOptions().mode
    mode = opts_new.mode if opts_new.mode != default_mode else opts_old.mode
    options = CallOptions(mode=mode, **merged)
    return Registration(
        uuid=old.uuid,
        channel=pick(old.channel, new.channel),
        uniqueid=pick(old.uniqueid, new.uniqueid),
        linkedid=pick(old.linkedid, new.linkedid),
        options=options,
        server=pick(old.server, new.server),
    )


class SharedRegistrations(Protocol):
    """Where bridges sharing a database find registrations made on another bridge (storage)."""

    def save_registration(self, registration: Registration) -> None: ...

    def load_registration(self, uuid: str) -> Optional[Registration]: ...


class Registrations:
    """Thread-safe uuid -> Registration map (AMI reader threads call register()).

    Lifetime of a registration, so that one kept per call does not pile up forever:
      * registered, no connection has claimed it yet: dropped `unclaimed_ttl_s` later;
      * claimed (``wait_for`` by the call's connection): kept while any claim is held;
      * released (``release`` when that connection ends, once per ``wait_for``): kept for
        `linger_s` more, so a second AudioSocket() with the same UUID (a retry, a failover)
        still finds its channel and options, then dropped.
    A new registration or claim of the uuid cancels a pending expiry. Expiry is lazy: each
    public call first drops what is due, from a heap ordered by deadline (amortised O(log n)).
    """

    def __init__(self, *, linger_s: float = 300.0, unclaimed_ttl_s: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic,
                 shared: Optional[SharedRegistrations] = None) -> None:
        self.linger_s, self.unclaimed_ttl_s = linger_s, unclaimed_ttl_s
        self.shared = shared  # looked up when a call arrives that no one registered here
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._claims: dict[str, int] = {}  # uuid -> connections holding it (registered or not)
        self._deadlines: list[tuple[float, int, str]] = []  # heap of (expires_at, token, uuid)
        self._tokens = itertools.count(1)
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future]]] = {}

    def register(self, registration: Registration) -> None:
        key = canonical_uuid(registration.uuid)
        registration = dataclasses.replace(registration, uuid=key)
        with self._lock:
            self._sweep()
            old = self._entries.get(key)
            merged = _merge(old.registration, registration) if old else registration
            self._entries[key] = _Entry(merged)
            if not self._claims.get(key):
                self._expire_after(key, self.unclaimed_ttl_s)
            waiters = self._waiters.pop(key, [])
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future, merged)

    def get(self, uuid: str) -> Optional[Registration]:
        """A lookup (e.g. by a sink); it neither claims nor extends the registration."""
        with self._lock:
            self._sweep()
            entry = self._entries.get(canonical_uuid(uuid))
            return entry.registration if entry else None

    async def wait_for(self, uuid: str, timeout_s: float) -> Optional[Registration]:
        """Claim `uuid` for a connection and return its registration, waiting up to `timeout_s`.

        The claim holds whether or not a registration turns up; end it with ``release(uuid)``.
        """
        key = canonical_uuid(uuid)
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        with self._lock:
            self._sweep()
            self._claims[key] = self._claims.get(key, 0) + 1
            entry = self._entries.get(key)
            if entry:
                entry.token = 0  # cancels its expiry: the heap item no longer matches
            if entry:
                return entry.registration
            self._waiters.setdefault(key, []).append((loop, future))
        try:
            found = await self._load_shared(key)
            if found is not None:
                self.register(found)
                return self.get(key) or found
            if timeout_s <= 0:
                return None
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            self._drop_waiter(key, future)

    async def _load_shared(self, key: str) -> Optional[Registration]:
        if self.shared is None:
            return None
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, self.shared.load_registration, key)
        except Exception:  # noqa: BLE001 - the call goes on without; storage errors are logged
            log.warning("could not look up the shared registration of %s", key, exc_info=True)
            return None

    def release(self, uuid: str) -> None:
        """The connection that claimed `uuid` (``wait_for``) has ended; call once per claim.

        When no claim is left the registration lingers for `linger_s`, then is dropped.
        Releasing a uuid that was never claimed or registered does nothing.
        """
        key = canonical_uuid(uuid)
        with self._lock:
            self._sweep()
            claims = self._claims.get(key, 0)
            if claims > 1:
                self._claims[key] = claims - 1
            elif claims == 1:
                del self._claims[key]
                if key in self._entries:
                    self._expire_after(key, self.linger_s)

    def forget(self, uuid: str) -> None:
        """Drop the registration now (claims, if any, stay counted)."""
        with self._lock:
            self._entries.pop(canonical_uuid(uuid), None)

    def __len__(self) -> int:
        """Registrations held (expired ones are dropped first)."""
        with self._lock:
            self._sweep()
            return len(self._entries)

    # -- internals (self._lock held)
    def _expire_after(self, key: str, delay_s: float) -> None:
        entry = self._entries[key]
        entry.token = next(self._tokens)
        heapq.heappush(self._deadlines, (self._clock() + delay_s, entry.token, key))
        if len(self._deadlines) > 2 * len(self._entries) + 64:
            self._compact()

    def _sweep(self) -> None:
        now = self._clock()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, token, key = heapq.heappop(self._deadlines)
            entry = self._entries.get(key)
            if entry is not None and entry.token == token:
                del self._entries[key]

    def _compact(self) -> None:
        """Drop heap items made stale by re-registrations and claims (bounds the heap)."""
        self._deadlines = [item for item in self._deadlines
                           if (entry := self._entries.get(item[2])) is not None
                           and entry.token == item[1]]
        heapq.heapify(self._deadlines)

    def _drop_waiter(self, key: str, future: asyncio.Future) -> None:
        with self._lock:
            waiters = self._waiters.get(key, [])
            waiters[:] = [(lp, f) for lp, f in waiters if f is not future]
            if not waiters:
                self._waiters.pop(key, None)


@dataclass
class _Entry:
    registration: Registration
    token: int = 0  # the heap item that may expire this entry; 0: none (claimed)


def _resolve(future: asyncio.Future, registration: Registration) -> None:
    if not future.done():
        future.set_result(registration)
