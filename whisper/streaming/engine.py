"""The streaming engine: streams opened by any thread, served by the scheduler on a thread of its own."""
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Optional

from .decoder import BatchDecoder
from .options import EngineOptions, check_stream_options
from .scheduler import Clock, Scheduler
from .stream import Stream
from .types import EngineStats, EventCallback, StreamOptions

if TYPE_CHECKING:
    from ..model import Whisper

log = logging.getLogger(__name__)


def _whisper_decoder(model: "Whisper") -> BatchDecoder:
    from .whisper_decoder import WhisperBatchDecoder

    return WhisperBatchDecoder(model)


class StreamingEngine:
    """Owns a model (or any ``BatchDecoder``) on one scheduler thread and serves every open stream from it."""

    def __init__(self, model: Optional["Whisper"] = None, options: EngineOptions = EngineOptions(), *,
                 decoder: Optional[BatchDecoder] = None, clock: Clock = time.monotonic):  # fmt: skip
        if (model is None) == (decoder is None):
            raise ValueError("give a model or a decoder")
        self.options = options
        self.decoder = decoder if decoder is not None else _whisper_decoder(model)
        self._scheduler = Scheduler(self.decoder, options, clock)
        self._wakeup = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    def start(self) -> None:
        if self._thread is None:
            self._scheduler.paced = True
            self._thread = threading.Thread(target=self._run, name="whisper-scheduler", daemon=True)
            self._thread.start()

    def open_stream(self, stream_id: str, options: StreamOptions = StreamOptions(),
                    on_event: Optional[EventCallback] = None) -> Stream:  # fmt: skip
        check_stream_options(options, self.decoder.is_multilingual)
        stream = Stream(stream_id, options, self.options, on_event or (lambda event: None), self._wakeup.set)
        self._scheduler.add(stream)
        return stream

    def is_alive(self) -> bool:
        """The scheduler thread runs (health checks)."""
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> EngineStats:
        return self._scheduler.stats()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Flush every open stream (their finals are delivered), then stop the scheduler."""
        futures = [stream.close() for stream in self._scheduler.streams()]
        deadline = time.monotonic() + timeout_s
        for future in futures:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - a stream that fails to flush must not block shutdown
                log.warning("a stream did not flush before the deadline")
        self._stopping = True
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=max(0.1, deadline - time.monotonic()))
            self._thread = None
            self._scheduler.paced = False

    def step(self) -> bool:
        """One scheduler tick on the caller's thread: for deterministic simulations (engine not started)."""
        if self._thread is not None:
            raise RuntimeError("step() is for an engine whose scheduler thread is not running")
        return self._scheduler.tick()

    def _run(self) -> None:
        try:
            self._scheduler.calibrate()
        except Exception:  # noqa: BLE001 - capacity is then learnt from the first batches
            log.exception("streaming engine warm-up failed")
        busy = False
        while not self._stopping:
            if not busy:  # idle: wait for audio, then let a tick's worth of frames gather
                self._wakeup.wait(timeout=self.options.tick_s * 5)
                time.sleep(self.options.tick_s)
            self._wakeup.clear()
            try:
                busy = self._scheduler.tick()
            except Exception:  # noqa: BLE001 - the scheduler must survive one bad batch
                log.exception("streaming scheduler tick failed")
                busy = False
