"""The interface the bridge drives an engine through, whichever runs it: ``StreamingEngine`` (in
this process), ``EngineProcess`` (in a child process), ``EnginePool`` (several of those) and the
tests' fake. Pure Python, no torch: the bridge's process imports it without loading a model.

Every method may be called from any thread; events reach ``on_event`` on a thread of the
engine's, never the caller's.
"""
from __future__ import annotations

from concurrent.futures import Future
from typing import Optional, Protocol, runtime_checkable

from .types import EngineStats, EventCallback, StreamOptions


@runtime_checkable
class EngineStream(Protocol):
    """One stream's audio in: ``push`` never blocks (past a bound, audio is dropped and counted)."""

    def push(self, pcm: bytes, sample_rate_hz: int = 8000) -> None: ...

    def close(self) -> Future:
        """Flush: the open utterance becomes final; resolves after the stream's last event."""


@runtime_checkable
class Engine(Protocol):
    def start(self) -> None: ...

    def open_stream(self, stream_id: str, options: StreamOptions = StreamOptions(),
                    on_event: Optional[EventCallback] = None) -> EngineStream: ...  # fmt: skip

    def is_alive(self) -> bool:
        """It can transcribe (health checks)."""

    def stats(self) -> EngineStats: ...

    def stop(self, timeout_s: float = 10.0) -> None:
        """Flush every open stream (their finals are delivered), then stop."""
