"""Signed linear audio (slin): 16-bit little-endian mono PCM, as AudioSocket carries it."""
from __future__ import annotations

BYTES_PER_SAMPLE = 2
FRAME_MS = 20  # Asterisk sends one frame of audio per 20 ms
FRAMES_PER_S = 1000 // FRAME_MS


def duration_s(byte_count: int, sample_rate_hz: int) -> float:
    return byte_count / (BYTES_PER_SAMPLE * sample_rate_hz)


def frame_bytes(sample_rate_hz: int, frame_ms: int = FRAME_MS) -> int:
    """Bytes of one frame of `frame_ms` at `sample_rate_hz` (320 for 20 ms at 8 kHz)."""
    return sample_rate_hz * frame_ms // 1000 * BYTES_PER_SAMPLE


def silence(seconds: float, sample_rate_hz: int) -> bytes:
    return bytes(BYTES_PER_SAMPLE * int(seconds * sample_rate_hz))
