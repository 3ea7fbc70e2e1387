"""AMI sink and listener: transcripts out to Asterisk, call registrations in.

Out (per call, on the call's channel from Registrations):
  every final  -> Setvar TRANSCRIPT_FULL_n (changed parts only), TRANSCRIPT_PARTS,
                  TRANSCRIPT_SEGMENTS, TRANSCRIPT (latest utterance, set last),
                  then `UserEvent: Transcript` (Final: 1)
  partials     -> `UserEvent: Transcript` (Final: 0), if enabled for the call
  call end     -> `UserEvent: TranscriptEnd`
In: `UserEvent: AudioSocketStart` events (dialplan UserEvent() app; needs read
class `user`) register uuid -> channel + options in Registrations.

One sender thread owns the AMI session. Sink methods only enqueue (never
block the event loop). While AMI is down, items wait in the Outbox (see its
drop policy) and the thread reconnects with exponential backoff.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional

from whisper.streaming.types import TranscriptEvent

from ..backoff import Backoff
from ..outputs.sinks import CallInfo
from ..redaction import channel_text
from ..registrations import Registration, Registrations
from .ami_client import AmiConnection, AmiTimeout, ManagerAuthException, ManagerException
from .ami_outbox import Outbox, OutboxItem
from .ami_protocol import (START_EVENT, AmiLineTooLong, alert_event, caption_event, end_event,
                           registration_from_event)
from whisper.grammar import parse_grammar

from .variables import CallCaptionState, answer_confidence

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AmiConfig:
    name: str = "default"  # of this server (PBX): in logs, metrics and registrations
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "transcriber"
    secret: str = field(default="", repr=False)  # never logged
    partials: bool = False  # bridge default for partial captions; per-call option overrides
    events: str = "user"  # Login `Events:` mask: only what the listener needs
    connect_timeout_s: float = 5.0
    action_timeout_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    max_pending: int = 2000  # outbox bound, enforced on partial captions first
    max_finals: int = 20000  # past this the oldest final is dropped (counted, logged)
    drain_timeout_s: float = 5.0  # on close: the flush of what is queued stops after this long
    drain_max_s: float = 60.0  # without progress, and in any case after this long


class AmiSink:
    """A Sink (see outputs/sinks.py). ``start()`` is synchronous; ``close()`` is async."""

    def __init__(self, config: AmiConfig, registrations: Registrations, *,
                 connection_factory: Optional[Callable[[], AmiConnection]] = None) -> None:
        self.config = config
        self.registrations = registrations
        self.counters: Counter = Counter()
        self.state = "idle"  # idle | connecting | connected | down | auth-failed | closed
        self.last_error: Optional[str] = None
        self._factory = connection_factory or (lambda: AmiConnection(
            connect_timeout_s=config.connect_timeout_s, action_timeout_s=config.action_timeout_s))
        self._outbox = Outbox(config.max_pending, config.max_finals, on_dropped=self._sent)
        self._calls: dict[str, CallCaptionState] = {}  # event-loop thread only
        self._unsent_finals: Counter = Counter()  # uuid -> final items queued, not yet sent
        self._unsent_lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._drain_deadline = self._drain_cap = 0.0
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ami-sink", daemon=True)
            self._thread.start()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    @property
    def pending(self) -> int:
        return len(self._outbox)

    @property
    def outbox_stats(self):
        return self._outbox.stats

    # -- Sink
    async def call_started(self, call: CallInfo) -> None:
        self._calls.setdefault(call.uuid, CallCaptionState())

    async def transcript(self, call: CallInfo, event: TranscriptEvent) -> None:
        try:
            self._enqueue_transcript(call, event)
        except Exception:
            log.exception("AMI sink: could not queue %s for call %s", event.kind, call.uuid)

    async def settle(self, call: CallInfo, timeout_s: float) -> None:
        """Returns once every final queued for `call` has been answered by Asterisk."""
        loop = asyncio.get_running_loop()
        deadline_s = loop.time() + timeout_s
        while self._unsent(call.uuid) and loop.time() < deadline_s:
            await asyncio.sleep(0.01)

    def _unsent(self, uuid: str) -> int:
        with self._unsent_lock:
            return self._unsent_finals.get(uuid, 0)

    def _put(self, item: OutboxItem) -> None:
        if item.final:
            with self._unsent_lock:
                self._unsent_finals[item.uuid] += 1
        self._outbox.put(item)

    def _sent(self, item: OutboxItem) -> None:
        if item.final:
            with self._unsent_lock:
                self._unsent_finals[item.uuid] -= 1
                if self._unsent_finals[item.uuid] <= 0:
                    del self._unsent_finals[item.uuid]

    async def alert(self, call: CallInfo, alert) -> None:
        """A phrase alert (outputs/alerts.py) as `UserEvent: TranscriptAlert`, sent as a final is."""
        registration = self._registration(call)
        self._put(OutboxItem(call.uuid, [alert_event(call.uuid, registration.channel, alert,
                                                     registration.options.speaker)],
                             final=True))

    async def call_ended(self, call: CallInfo) -> None:
        state = self._calls.pop(call.uuid, CallCaptionState())
        channel = self._registration(call).channel
        self._put(OutboxItem(call.uuid, [end_event(call.uuid, channel, len(state.finals),
                                                   call.end_reason)], final=True))

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close_sync)

    def close_sync(self) -> None:
        """Flushes the finals queued (partials are dropped) while Asterisk takes them: until none
        is left, none went out for drain_timeout_s, or drain_max_s have passed."""
        now = time.monotonic()
        self._drain_deadline = now + self.config.drain_timeout_s
        self._drain_cap = now + max(self.config.drain_timeout_s, self.config.drain_max_s)
        self._outbox.drop_partials()
        self._stop.set()
        self._outbox.wake()
        if self._thread is not None:
            self._thread.join(self._drain_cap - now + self.config.connect_timeout_s + 2.0)
        unsent = self._outbox.finals_pending()
        if unsent:
            log.warning("AMI sink closed with %d final item(s) unsent (transcripts are in storage)",
                        unsent)
        self._log_drop_counts()

    # -- queueing (event-loop thread)
    def _enqueue_transcript(self, call: CallInfo, event: TranscriptEvent) -> None:
        registration = self._registration(call)
        speaker = registration.options.speaker
        caption = caption_event(call.uuid, registration.channel, event, speaker)
        if event.is_final:
            state = self._calls.setdefault(call.uuid, CallCaptionState())
            grammar = parse_grammar(registration.options.grammar) if registration.options.grammar else None
            confidence = answer_confidence(event.avg_logprob) if grammar is not None else None
            # an IVR's own answer goes to its channel in clear; the caption event is redacted
            actions = state.final_setvars(registration.channel, channel_text(event), confidence,
                                          grammar) + [caption]
            self._put(OutboxItem(call.uuid, actions, final=True, segment=event.segment_index))
        elif self._partials_enabled(registration):
            self._put(OutboxItem(call.uuid, [caption], final=False,
                                        segment=event.segment_index))

    def _registration(self, call: CallInfo) -> Registration:
        found = self.registrations.get(call.uuid)
        return found if found is not None and found.channel else call.registration

    def _partials_enabled(self, registration: Registration) -> bool:
        per_call = registration.options.partials
        return self.config.partials if per_call is None else per_call

    # -- sender thread
    def _run(self) -> None:
        backoff = Backoff(self.config.backoff_initial_s, self.config.backoff_max_s, jitter=False)
        failures = 0
        while not self._finished():
            connection = self._open_session()
            if connection is None:
                if self._stop.is_set():
                    break  # closing while AMI is down: nothing more can be delivered
                failures += 1
                self._stop.wait(backoff.delay_s(failures))
                continue
            failures = 0
            self._pump(connection)
            self._connected.clear()
            connection.close()
        self.state = "closed"

    def _finished(self) -> bool:
        return self._stop.is_set() and (not len(self._outbox)
                                        or time.monotonic() > self._drain_deadline)

    def _open_session(self) -> Optional[AmiConnection]:
        cfg = self.config
        self.state = "connecting"
        connection = self._factory()
        connection.register_event("UserEvent", self._on_user_event)
        try:
            connection.connect(cfg.host, cfg.port)
            connection.login(cfg.username, cfg.secret, events=cfg.events)
        except ManagerAuthException as exc:
            self._fail("auth-failed", f"AMI login as {cfg.username!r} at {cfg.host}:{cfg.port} "
                       f"(server {cfg.name}) "
                       f"rejected: {exc} (check manager.conf secret/permit/read/write)")
            connection.close()
            return None
        except ManagerException as exc:
            self._fail("down", f"AMI at {cfg.host}:{cfg.port} (server {cfg.name}) unavailable: "
                       f"{_reason(exc)}")
            connection.close()
            return None
        self.counters["sessions"] += 1
        log.info("AMI connected to %s:%d as %r (server %s, %d item(s) pending)", cfg.host,
                 cfg.port, cfg.username, cfg.name, len(self._outbox))
        self._log_drop_counts()
        self.state, self.last_error = "connected", None
        self._connected.set()
        return connection

    def _fail(self, state: str, message: str) -> None:
        if message != self.last_error:  # once per failure streak, not per retry
            (log.error if state == "auth-failed" else log.warning)("%s", message)
        self.counters[state] += 1
        self.state, self.last_error = state, message

    def _pump(self, connection: AmiConnection) -> None:
        while connection.connected() and not self._finished():
            item = self._outbox.get(timeout_s=0.2)
            if item is None:
                continue
            if not self._send_item(connection, item):
                self._outbox.put_back(item)
                return
            self._sent(item)
            if self._stop.is_set():  # flushing at close: progress buys more time, up to the cap
                self._drain_deadline = min(time.monotonic() + self.config.drain_timeout_s,
                                           self._drain_cap)

    def _send_item(self, connection: AmiConnection, item: OutboxItem) -> bool:
        """False if the session failed; `item.next_index` marks where to resume."""
        for action in item.pending_actions:
            try:
                response = connection.send_action(action)
            except AmiLineTooLong:
                log.exception("AMI action skipped")
                self.counters["skipped"] += 1
            except (ManagerException, AmiTimeout) as exc:
                log.warning("AMI session lost while sending %s: %s", action.get("Action"),
                            _reason(exc))
                return False
            else:
                self._count_response(action, response)
            item.next_index += 1
        return True

    def _count_response(self, action: dict, response) -> None:
        if response.get_header("Response") == "Success":
            self.counters["sent"] += 1
            return
        # e.g. "No such channel" once the call has hung up: expected, not retried
        self.counters["rejected"] += 1
        log.debug("AMI %s %s rejected: %s", action.get("Action"), action.get("Variable", ""),
                  response.get_header("Message"))

    def _log_drop_counts(self) -> None:
        stats = self._outbox.stats
        if (stats.dropped_partials or stats.superseded_partials or stats.finals_over_bound
                or stats.dropped_finals):
            log.info("AMI outbox: %d partial(s) dropped, %d superseded, %d final(s) over bound, "
                     "%d final(s) dropped, max depth %d", stats.dropped_partials,
                     stats.superseded_partials, stats.finals_over_bound, stats.dropped_finals,
                     stats.max_depth)

    # -- listener (AMI event thread)
    def _on_user_event(self, event, _manager) -> None:
        try:
            registration = registration_from_event(event.headers)
        except ValueError as exc:
            log.warning("ignoring malformed %s event: %s", START_EVENT, exc)
            return
        if registration is not None:
            registration = dataclasses.replace(registration, server=self.config.name)
            self.registrations.register(registration)
            self.counters["registrations"] += 1
            log.info("registered call %s on %s of server %s (%s)", registration.uuid,
                     registration.channel, self.config.name, registration.options)


def _reason(exc: BaseException) -> str:
    return str(exc.args[-1]) if exc.args else type(exc).__name__
