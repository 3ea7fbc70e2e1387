"""The streaming engine in a process of its own, with the interface of StreamingEngine.

In one interpreter the engine's scheduler thread shares Python's lock with whoever feeds it: in the
bridge, an asyncio thread that handles 50 AudioSocket frames a second per call. The scheduler
gives the lock up around every torch operation and waits to take it back, so the feeding costs
the engine far more than its own CPU time. ``EngineProcess`` runs the model and the scheduler in a
child process (spawned, so no state is inherited) and speaks to it over one pipe:

  parent -> child  lists of ("open", id, StreamOptions) | ("push", id, rate, pcm) |
                   ("close", id) | ("stop",), sent by one thread every `flush_s` (pushes of a
                   stream that follow one another are joined)
  child -> parent  ("ready", multilingual) once, then ("event", TranscriptEvent) |
                   ("closed", id, error) | ("stats", EngineStats) every `stats_s` and
                   before each "closed", ("stopped",)

Events reach the stream's callback on the parent's reader thread, as they reach it on the
scheduler thread in process; a stream's close() future resolves after its last event. If the
child dies, is_alive() turns false, every open stream's close() fails with EngineDied and audio
pushed from then on is dropped. `silent_s()` says how long the child has sent nothing: it sends
stats every `_STATS_S` even when idle, so a long silence means it hangs (EnginePool kills it).

Backpressure (the rule is in whisper.streaming's docstring): audio waiting to be piped to the
child is capped at OUTGOING_CAP_S seconds per open stream (a child that stops reading fills the
pipe); past that a push is dropped and counted in the stats' audio_dropped_s.

This module imports no torch: the parent need not load it at all.
"""
from __future__ import annotations

import itertools
import logging
import multiprocessing
import sys
import threading
from concurrent.futures import Future
import time
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Tuple

from .options import EngineOptions, check_stream_options
from .pcm import duration_s, joined_runs
from .types import EngineStats, EventCallback, StreamOptions

log = logging.getLogger(__name__)

_FLUSH_S = 0.02
_STATS_S = 0.5
OUTGOING_CAP_S = 10.0
_CAP_BYTES_PER_S = 32000  # 16-bit at 16 kHz, the highest rate a call sends
_EMPTY_STATS = EngineStats(active_streams=0, queued_audio_s=0.0, lag_s=0.0, behind=False, partials_skipped=0,
                           finals_emitted=0, partials_emitted=0, audio_dropped_s=0.0)  # fmt: skip


class EngineGone(RuntimeError):
    """The engine's process ended while streams were open."""


class EngineDied(EngineGone):
    """The engine's process ended without being stopped (killed, crashed)."""


class RemoteStream:
    """An EngineStream whose audio goes to the engine's process."""

    def __init__(self, engine: "EngineProcess", stream_id: str, on_event: EventCallback):
        self.id, self.on_event = stream_id, on_event
        self._engine = engine
        self.close_future: Future = Future()

    def push(self, pcm: bytes, sample_rate_hz: int = 8000) -> None:
        if pcm:
            self._engine._send(("push", self.id, sample_rate_hz, bytes(pcm)))

    def close(self) -> Future:
        """Flush: the open utterance becomes final; resolves after the stream's last event."""
        self._engine._send(("close", self.id))
        return self.close_future


class EngineProcess:
    """An Engine (interface.py) in a child process."""

    def __init__(self, model_name: str, *, device: Optional[str] = None, options: EngineOptions = EngineOptions(),
                 threads: Optional[int] = None, flush_s: float = _FLUSH_S, start_timeout_s: float = 300.0,
                 quantize: bool = False):  # fmt: skip
        """`threads`: torch's intra-op threads in the child (None: torch's default, every core);
        `quantize`: load_model's (the decoder's linear layers in int8, CPU only)."""
        self.model_name, self.device, self.options, self.threads = model_name, device, options, threads
        self.quantize = quantize
        self.flush_s, self.start_timeout_s = flush_s, start_timeout_s
        self.multilingual = False
        self._streams: Dict[str, RemoteStream] = {}
        self._outgoing: List[tuple] = []
        self._outgoing_bytes = 0  # audio in _outgoing
        self.dropped_audio_s = 0.0  # pushes dropped: outgoing full, or the child gone
        self._gone = False  # the child ended: nothing is sent any more
        self._last_heard_s = time.monotonic()
        self._lock = threading.Condition()
        self._stats = _EMPTY_STATS
        self._stopping = False
        self._process = None
        self._connection = None
        self._threads: List[threading.Thread] = []

    # -- lifecycle
    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child_end = context.Pipe()
        settings = _ChildSettings(self.model_name, self.device, self.options, sys.getswitchinterval(),
                                  logging.getLogger().getEffectiveLevel(), self.threads, self.quantize)
        self._process = context.Process(target=_child_main, name="whisper-engine", daemon=True,
                                        args=(child_end, settings))
        self._process.start()
        child_end.close()
        if not self._connection.poll(self.start_timeout_s):
            self._process.kill()
            raise EngineGone(f"the engine process did not start within {self.start_timeout_s:g} s")
        try:
            kind, self.multilingual = self._connection.recv()
        except EOFError:
            raise EngineGone(f"the engine process exited while starting ({self._process.exitcode})") from None
        assert kind == "ready"
        self._last_heard_s = time.monotonic()
        for target, name in ((self._send_loop, "engine-sender"), (self._receive_loop, "engine-receiver")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("streaming engine running in process %d", self._process.pid)

    def is_alive(self) -> bool:
        return (not self._gone and self._process is not None and self._process.is_alive()
                and all(thread.is_alive() for thread in self._threads))

    def stats(self) -> EngineStats:
        stats = self._stats
        if self.dropped_audio_s:
            stats = replace(stats, audio_dropped_s=stats.audio_dropped_s + self.dropped_audio_s)
        return stats

    def silent_s(self) -> float:
        """Seconds since the child last sent anything (it sends stats every _STATS_S)."""
        return time.monotonic() - self._last_heard_s

    def kill(self) -> None:
        """Ends a child that hangs: its streams then fail with EngineDied."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()

    def open_stream(self, stream_id: str, options: StreamOptions = StreamOptions(),
                    on_event: Optional[EventCallback] = None) -> RemoteStream:  # fmt: skip
        check_stream_options(options, self.multilingual)
        if not self.is_alive():
            raise EngineGone("the engine process is not running")
        with self._lock:
            if stream_id in self._streams:
                raise ValueError(f"stream {stream_id!r} is already open")
            stream = self._streams[stream_id] = RemoteStream(self, stream_id, on_event or (lambda event: None))
        self._send(("open", stream_id, options))
        return stream

    def stop(self, timeout_s: float = 10.0) -> None:
        """Flush every open stream (their finals are delivered), then end the process."""
        if self._process is None or self._process.pid is None:  # never started, or failed to
            self._process = None
            return
        self._send(("stop",))
        self._process.join(timeout_s)
        if self._process.is_alive():
            log.warning("the engine process did not stop within %g s; killing it", timeout_s)
            self._process.kill()
            self._process.join(5)
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(2)
        self._fail_open_streams("the engine process stopped")
        self._process = None

    # -- parent side of the pipe
    def _send(self, item: tuple) -> None:
        with self._lock:
            if item[0] == "push":
                if self._gone or not self._room_for(len(item[3])):
                    self.dropped_audio_s += duration_s(len(item[3]), item[2])
                    return
                self._outgoing_bytes += len(item[3])
            elif self._gone:
                return
            self._outgoing.append(item)
            if len(self._outgoing) == 1:
                self._lock.notify_all()

    def _room_for(self, size: int) -> bool:
        cap = OUTGOING_CAP_S * _CAP_BYTES_PER_S * max(1, len(self._streams))
        return self._outgoing_bytes + size <= cap

    def _send_loop(self) -> None:
        while True:
            with self._lock:
                while not self._outgoing and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                batch, self._outgoing = _joined(self._outgoing), []
                self._outgoing_bytes = 0
            try:
                self._connection.send(batch)
            except (OSError, EOFError, BrokenPipeError):
                return
            if any(item[0] == "stop" for item in batch):
                return
            # let the pushes of a few frames gather: one message instead of one per frame
            with self._lock:
                self._lock.wait_for(lambda: self._stopping, timeout=self.flush_s)

    def _receive_loop(self) -> None:
        stopped = False
        while True:
            try:
                message = self._connection.recv()
            except (EOFError, OSError):
                break
            self._last_heard_s = time.monotonic()
            kind = message[0]
            if kind == "event":
                self._deliver(message[1])
            elif kind == "closed":
                self._closed(message[1], message[2])
            elif kind == "stats":
                self._stats = message[1]
            elif kind == "stopped":
                stopped = True
                break
        with self._lock:
            self._gone = True
            self._outgoing, self._outgoing_bytes = [], 0  # nobody will read it: free it
        if stopped or self._stopping:
            self._fail_open_streams("the engine process ended")
        else:
            log.error("the engine process %s ended unexpectedly (exit code %s)",
                      self._process.pid if self._process else "?", self._exit_code())
            self._fail_open_streams("the engine process died", EngineDied)

    def _exit_code(self):
        process = self._process
        if process is None:
            return None
        process.join(1)
        return process.exitcode

    def _deliver(self, event) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        try:
            stream.on_event(event)
        except Exception:  # noqa: BLE001 - a faulty listener must not stop other streams
            log.exception("event callback of stream %s failed", event.stream_id)

    def _closed(self, stream_id: str, error: Optional[str]) -> None:
        with self._lock:
            stream = self._streams.pop(stream_id, None)
        if stream is None or stream.close_future.done():
            return
        if error:
            stream.close_future.set_exception(EngineGone(error))
        else:
            stream.close_future.set_result(None)

    def _fail_open_streams(self, why: str, error=EngineGone) -> None:
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            if not stream.close_future.done():
                stream.close_future.set_exception(error(why))


def _joined(items: List[tuple]) -> List[tuple]:
    """Consecutive pushes of one stream at one rate as one push (pcm.joined_runs), other items as they are."""
    joined: List[tuple] = []
    for pushes, run in itertools.groupby(items, lambda item: item[0] == "push"):
        if pushes:
            joined += [("push", stream_id, rate, pcm)
                       for (stream_id, rate), pcm in joined_runs(((item[1], item[2]), item[3]) for item in run)]
        else:
            joined += run
    return joined


# -- the child process
@dataclass(frozen=True)
class _ChildSettings:
    model_name: str
    device: Optional[str]
    options: EngineOptions
    switch_interval_s: float  # the parent's (the bridge sets a short one, see its cli)
    log_level: int
    threads: Optional[int] = None
    quantize: bool = False


def _child_main(connection, settings: _ChildSettings) -> None:
    import queue
    import signal

    import torch

    import whisper
    from .engine import StreamingEngine

    # The parent stops the engine (its "stop", or the pipe closing when it dies); a Ctrl-C meant
    # for the parent reaches this process group too and must not cut the flush short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.setswitchinterval(settings.switch_interval_s)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    device = {"device": settings.device} if settings.device else {}
    model = whisper.load_model(settings.model_name, quantize=settings.quantize, **device)
    engine = StreamingEngine(model, settings.options)
    engine.start()
    outgoing: "queue.Queue[Optional[tuple]]" = queue.Queue()
    sender = threading.Thread(target=_child_send, args=(connection, outgoing, engine), daemon=True)
    connection.send(("ready", model.is_multilingual))
    sender.start()
    streams: Dict[str, object] = {}
    try:
        _child_serve(connection, engine, streams, outgoing)
    finally:
        engine.stop()
        outgoing.put(("stopped",))
        outgoing.put(None)
        sender.join(10)


def _child_serve(connection, engine, streams: Dict[str, object], outgoing) -> None:
    while True:
        try:
            batch = connection.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        for item in batch:
            kind = item[0]
            if kind == "stop":
                return
            if kind == "open":
                _child_open(engine, streams, outgoing, item[1], item[2])
            elif kind == "push" and item[1] in streams:
                streams[item[1]].push(item[3], item[2])
            elif kind == "close":
                _child_close(streams, outgoing, item[1])


def _child_open(engine, streams: Dict[str, object], outgoing, stream_id: str, options: StreamOptions) -> None:
    try:
        streams[stream_id] = engine.open_stream(stream_id, options, lambda event: outgoing.put(("event", event)))
    except Exception as error:  # noqa: BLE001 - the parent checked the options; say why anyway
        outgoing.put(("closed", stream_id, f"could not open the stream: {error}"))


def _child_close(streams: Dict[str, object], outgoing, stream_id: str) -> None:
    stream = streams.pop(stream_id, None)
    if stream is None:
        outgoing.put(("closed", stream_id, None))
        return

    def done(future: Future) -> None:
        error = future.exception()
        outgoing.put(("closed", stream_id, None if error is None else str(error)))

    stream.close().add_done_callback(done)


def _child_send(connection, outgoing, engine) -> None:
    import queue
    import time

    stats_due_s = time.monotonic()
    while True:
        try:
            item: Optional[Tuple] = outgoing.get(timeout=_STATS_S)
        except queue.Empty:
            item = ()
        if item is None:
            return
        # Due stats go out also while events keep coming, and fresh ones before a stream's
        # "closed": whoever waited for the close then reads stats that count its stream.
        if time.monotonic() >= stats_due_s or (item and item[0] == "closed"):
            item = (("stats", engine.stats()),) + ((item,) if item else ())
            stats_due_s = time.monotonic() + _STATS_S
        else:
            item = (item,) if item else ()
        try:
            for message in item:
                connection.send(message)
        except (OSError, BrokenPipeError):
            return
