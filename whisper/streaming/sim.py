"""Feeding a recording to the streaming engine as a call would: deterministically, or paced in real time."""
from __future__ import annotations

import time
from typing import List

import numpy as np

from .engine import StreamingEngine
from .pcm import FRAME_MS, frame_bytes
from .types import StreamOptions, TranscriptEvent



def frames_of(pcm: bytes, sample_rate_hz: int, frame_ms: int = FRAME_MS) -> List[bytes]:
    size = frame_bytes(sample_rate_hz, frame_ms)
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def simulate(
    engine: StreamingEngine, pcm: bytes, sample_rate_hz: int, options: StreamOptions = StreamOptions(),
    *, step_ms: int = 100, stream_id: str = "simulated",
) -> List[TranscriptEvent]:  # fmt: skip
    """Deterministic: the engine (not started) takes one scheduler step per ``step_ms`` of audio.

    The events are those a real-time call would get if the model were infinitely fast, so runs repeat
    exactly; partials come every ``options.partial_interval_s`` of audio.
    """
    events: List[TranscriptEvent] = []
    stream = engine.open_stream(stream_id, options, events.append)
    frames_per_step = max(1, step_ms // FRAME_MS)
    frames = frames_of(pcm, sample_rate_hz)
    for i, frame in enumerate(frames):
        stream.push(frame, sample_rate_hz)
        if (i + 1) % frames_per_step == 0:
            engine.step()
    future = stream.close()
    while not future.done():
        engine.step()
    return events


def play_realtime(stream, pcm: bytes, sample_rate_hz: int, frame_ms: int = FRAME_MS) -> List[float]:
    """Push 20 ms frames on a real-time clock (as Asterisk does); returns each frame's push time."""
    pushed_at = []
    start = time.monotonic()
    for i, frame in enumerate(frames_of(pcm, sample_rate_hz, frame_ms)):
        delay = start + i * frame_ms / 1000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stream.push(frame, sample_rate_hz)
        pushed_at.append(time.monotonic())
    return pushed_at


def silence(seconds: float, sample_rate_hz: int) -> bytes:
    return np.zeros(int(seconds * sample_rate_hz), dtype="<i2").tobytes()
