"""The caption stream's core (no sockets): a Sink that turns calls and transcripts into JSON-ready
messages and fans them out to subscribers, each with a bounded queue.

Messages (their JSON schema: audiosocket_bridge/web/caption-stream.schema.json; docs/captions.rst):
  call_started  {type, call, channel, speaker, conversation, started_at}
  partial       {type, call, segment, start_s, end_s, text}            may still change
  final         {type, call, segment, start_s, end_s, text, language, words: [{text, start_s,
                 end_s, probability}]}                                  never changes
  alert         {type, call, segment, start_s, end_s, rule, matched, text}
  call_ended    {type, call, ended_at, reason}
`segment` is the final's index in storage (a UUID seen again continues its numbering), so a client
that reconnects asks for the finals from the first it lacks (``since``) and gets them from the
call's ring buffer of recent finals, or from storage when the ring no longer reaches back.

The sink never waits for a subscriber: a queue filling up first loses partials (the next partial
or final replaces them anyway), and a subscriber whose queue is full when a message that is not a
partial arrives is closed with a reason, never a final silently lost.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Optional

from .sinks import CallInfo

if TYPE_CHECKING:
    from whisper.streaming.types import TranscriptEvent

    from .storage import StoredCall, StoredSegment

log = logging.getLogger(__name__)

Message = dict


@dataclass(frozen=True)
class CaptionLimits:
    ring_finals: int = 256  # finals kept per live call for reconnecting clients
    queue_messages: int = 512  # messages waiting for one subscriber
    partials_until: float = 0.5  # a queue fuller than this share of its bound drops partials
    max_subscribers: int = 200

    def __post_init__(self) -> None:
        if min(self.ring_finals, self.queue_messages, self.max_subscribers) < 1:
            raise ValueError("caption limits must be at least 1")


# ------------------------------------------------------------------ messages

def _iso(value) -> Optional[str]:
    return value.isoformat() if value else None


def _words(words) -> list[dict]:
    return [{"text": w.text, "start_s": w.start_s, "end_s": w.end_s,
             "probability": w.probability} for w in words]


def started_message(call: CallInfo) -> Message:
    options = call.registration.options
    return {"type": "call_started", "call": call.uuid, "channel": call.registration.channel,
            "speaker": options.speaker, "conversation": options.conversation,
            "started_at": _iso(call.started_at)}


def event_message(call: CallInfo, event: TranscriptEvent, segment: int) -> Message:
    message = {"type": event.kind, "call": call.uuid, "segment": segment,
               "start_s": event.start_s, "end_s": event.end_s, "text": event.text.strip()}
    if event.is_final:
        message.update(language=event.language, words=_words(event.words))
    return message


def ended_message(uuid: str, ended_at, reason: Optional[str]) -> Message:
    return {"type": "call_ended", "call": uuid, "ended_at": _iso(ended_at), "reason": reason}


def stored_started_message(call: StoredCall) -> Message:
    return {"type": "call_started", "call": call.uuid, "channel": call.channel,
            "speaker": call.speaker, "conversation": call.conversation,
            "started_at": _iso(call.started_at)}


def stored_final_message(uuid: str, segment: StoredSegment) -> Message:
    return {"type": "final", "call": uuid, "segment": segment.index, "start_s": segment.start_s,
            "end_s": segment.end_s, "text": segment.text.strip(), "language": segment.language,
            "words": _words(segment.words)}


# ------------------------------------------------------------------ subscribers

class Subscriber:
    """One listener: all calls (`call` None) or one call. `offer()` never blocks."""

    def __init__(self, call: Optional[str], limits: CaptionLimits) -> None:
        self.call, self.limits = call, limits
        self.closed_reason: Optional[str] = None
        self.partials_dropped = 0
        self._queue: deque[Message] = deque()
        self._ready = asyncio.Event()

    def wants(self, message: Message) -> bool:
        return self.call is None or message["call"] == self.call

    def offer(self, message: Message) -> None:
        if self.closed_reason is not None:
            return
        queued = len(self._queue)
        if message["type"] == "partial" and queued >= self.limits.partials_until * self.limits.queue_messages:
            self.partials_dropped += 1
            return
        if queued >= self.limits.queue_messages:
            self.close(f"too slow: {queued} messages waiting")
            return
        self._queue.append(message)
        self._ready.set()

    def close(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
            self._queue.clear()
            self._ready.set()

    async def next(self) -> Optional[Message]:
        """The next message; None once closed (closed_reason says why)."""
        while not self._queue:
            if self.closed_reason is not None:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft() if self.closed_reason is None else None


class _LiveCall:
    def __init__(self, started: Message, offset: int, ring_finals: int) -> None:
        self.started, self.offset = started, offset
        self.ring: deque[Message] = deque(maxlen=ring_finals)
        self.first_segment = offset  # the ring holds every final from here on

    def keep(self, final: Message) -> None:
        if len(self.ring) == self.ring.maxlen:
            self.first_segment = self.ring[0]["segment"] + 1
        self.ring.append(final)


class TooManySubscribers(Exception):
    pass


class CaptionHub:
    """The Sink (place it after storage: a final is stored before a client hears of it).

    `segment_offset(uuid)` is the storage's number for the call's first segment of this session.
    """

    def __init__(self, limits: CaptionLimits = CaptionLimits(),
                 segment_offset: Callable[[str], int] = lambda uuid: 0) -> None:
        self.limits, self._segment_offset = limits, segment_offset
        self.calls: dict[str, _LiveCall] = {}
        self.subscribers: set[Subscriber] = set()
        self.slow_closed = 0  # subscribers closed for falling behind

    def subscribe(self, call: Optional[str] = None) -> Subscriber:
        if len(self.subscribers) >= self.limits.max_subscribers:
            raise TooManySubscribers(f"{len(self.subscribers)} caption subscribers already")
        subscriber = Subscriber(call, self.limits)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def live(self, call: str) -> Optional[_LiveCall]:
        return self.calls.get(call)

    def recent_finals(self, call: str, since: int) -> Optional[list[Message]]:
        """The live call's finals from segment `since` on, if its ring still reaches back that
        far; None when it does not (or the call is not live here): read storage instead."""
        live = self.calls.get(call)
        if live is None or since < live.first_segment:
            return None
        return [m for m in live.ring if m["segment"] >= since]

    def _publish(self, message: Message) -> None:
        for subscriber in list(self.subscribers):
            if subscriber.wants(message):
                subscriber.offer(message)
                if subscriber.closed_reason is not None:
                    self.slow_closed += 1
                    self.unsubscribe(subscriber)

    # -- Sink
    async def call_started(self, call: CallInfo) -> None:
        message = started_message(call)
        self.calls[call.uuid] = _LiveCall(message, self._segment_offset(call.uuid),
                                          self.limits.ring_finals)
        self._publish(message)

    async def transcript(self, call: CallInfo, event: TranscriptEvent) -> None:
        live = self.calls.get(call.uuid)
        offset = live.offset if live is not None else 0
        message = event_message(call, event, offset + event.segment_index)
        if event.is_final and live is not None:
            live.keep(message)
        self._publish(message)

    async def alert(self, call: CallInfo, alert) -> None:
        self._publish(alert.message(call.uuid))

    async def call_ended(self, call: CallInfo) -> None:
        self.calls.pop(call.uuid, None)
        self._publish(ended_message(call.uuid, call.ended_at, call.end_reason))

    async def close(self) -> None:
        self.shutdown("shutdown")

    def shutdown(self, reason: str) -> None:
        for subscriber in list(self.subscribers):
            subscriber.close(reason)
        self.subscribers.clear()


# ------------------------------------------------------------------ resuming

def parse_since(text: Optional[str], call: Optional[str]) -> dict[str, int]:
    """``since=7`` with ``call=UUID``, or ``since=UUID:7,UUID:3`` for the all-calls stream."""
    if not text:
        return {}
    found: dict[str, int] = {}
    for item in text.split(",")[:64]:
        uuid, _, number = item.rpartition(":")
        uuid = uuid or call
        if not uuid or not number.isdigit():
            raise ValueError(f"since: expected N (with call=UUID) or UUID:N[,UUID:N], got {item!r}")
        found[uuid.lower()] = int(number)
    return found


@dataclass
class Replayed:
    """What a subscriber's backlog sent: the newest final and the start of each call in it."""

    finals: dict[str, int]
    started: set[str]

    @classmethod
    def of(cls, messages: Iterable[Message]) -> "Replayed":
        replayed = cls({}, set())
        for message in messages:
            call = message.get("call")
            if message["type"] == "final":
                replayed.finals[call] = max(replayed.finals.get(call, -1), message["segment"])
            elif message["type"] == "call_started":
                replayed.started.add(call)
        return replayed

    def skip(self, message: Message) -> bool:
        """A live message that the backlog already sent (the subscription began before the
        backlog was read, so the two may overlap): a final, or the call's start once."""
        if message["type"] == "final":
            return message["segment"] <= self.finals.get(message["call"], -1)
        if message["type"] == "call_started" and message["call"] in self.started:
            self.started.discard(message["call"])
            return True
        return False
