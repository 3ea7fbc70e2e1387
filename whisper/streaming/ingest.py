"""A stream's audio on its way in, up to the utterances the endpointer finds in it.

``put`` and ``close`` come from any thread (the caller's socket) and only queue (inbox.py);
``drain``, on the scheduler thread, resamples what was queued to 16 kHz, cuts it into 20 ms
frames, classifies each with the VAD and hands the endpointer's boundaries to ``on_boundary``.
It keeps just the audio the open utterance (or the next one's pre-roll) can still need, which
``slice`` gives out for decoding.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from ..audio import StreamingResampler, int16_to_float
from .endpointing import Boundary, EndpointOptions, Endpointer
from .inbox import Inbox
from .options import EngineOptions
from .pcm import FRAMES_PER_S
from .vad import FRAME_SAMPLES, VoiceActivityDetector

_KEEP_BEFORE_PRE_ROLL_FRAMES = 10


class Ingest:
    def __init__(self, stream_id: str, options: EngineOptions, endpoint: EndpointOptions,
                 on_boundary: Callable[[Boundary], None]):  # fmt: skip
        """``endpoint``: the stream's endpointing (its own trailing silence, see stream.py)."""
        self._inbox = Inbox(stream_id, options.max_pending_audio_s)
        self._on_boundary = on_boundary
        # Everything below belongs to the scheduler thread.
        self._resampler: Optional[StreamingResampler] = None
        self._vad = VoiceActivityDetector(options.vad)
        self.endpointer = Endpointer(endpoint)
        self._keep_frames = round(options.endpoint.pre_roll_s * FRAMES_PER_S) + _KEEP_BEFORE_PRE_ROLL_FRAMES
        self._audio = np.zeros(0, dtype=np.float32)  # 16 kHz samples from _audio_start_frame on
        self._audio_start_frame = 0
        self._pending_frame_samples = np.zeros(0, dtype=np.float32)
        self.flushed = False

    # -- any thread
    def put(self, pcm: bytes, sample_rate_hz: int) -> bool:
        """Queue int16 PCM (or a float32 numpy array); False if there was none."""
        if isinstance(pcm, np.ndarray):
            pcm = (np.clip(pcm, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        if not pcm:
            return False
        self._inbox.put(bytes(pcm), sample_rate_hz)
        return True

    def close(self) -> None:
        self._inbox.close()

    @property
    def queued_s(self) -> float:
        return self._inbox.queued_s

    # -- scheduler thread
    def drain(self) -> float:
        """Process queued audio, and the end of the stream once closed; returns seconds dropped."""
        runs, dropped_s, closing = self._inbox.take()
        for rate, pcm in runs:  # one resample and one VAD pass per run, not per frame
            self._frames(self._resample(int16_to_float(pcm[: len(pcm) // 2 * 2]), rate))
        if closing and not self.flushed:
            self._flush()
        return dropped_s

    def slice(self, start_frame: int, end_frame: int) -> np.ndarray:
        begin = (start_frame - self._audio_start_frame) * FRAME_SAMPLES
        return self._audio[max(0, begin) : (end_frame - self._audio_start_frame) * FRAME_SAMPLES]

    def _resample(self, samples: np.ndarray, rate_hz: int) -> np.ndarray:
        if self._resampler is None or self._resampler.from_hz != rate_hz:
            tail = self._resampler.flush() if self._resampler is not None else np.zeros(0, np.float32)
            self._resampler = StreamingResampler(rate_hz)
            return np.concatenate([tail, self._resampler.process(samples)])
        return self._resampler.process(samples)

    def _frames(self, samples: np.ndarray) -> None:
        samples = np.concatenate([self._pending_frame_samples, samples])
        n_frames = len(samples) // FRAME_SAMPLES
        self._pending_frame_samples = samples[n_frames * FRAME_SAMPLES :]
        if n_frames == 0:
            return
        frames = samples[: n_frames * FRAME_SAMPLES]
        self._audio = np.concatenate([self._audio, frames])
        is_speech, level = self._vad.classify(frames.reshape(n_frames, FRAME_SAMPLES))
        for boundary in self.endpointer.push(is_speech, level):
            self._on_boundary(boundary)
        self._trim_idle_audio()

    def _trim_idle_audio(self) -> None:
        """Keep only what the open utterance (or a future one's pre-roll) can still need."""
        keep_from = self.endpointer.start_frame
        if keep_from is None:
            keep_from = self.endpointer.frame - self._keep_frames
        drop_frames = keep_from - self._audio_start_frame
        if drop_frames > 0:
            self._audio = self._audio[drop_frames * FRAME_SAMPLES :]
            self._audio_start_frame += drop_frames

    def _flush(self) -> None:
        tail = self._pending_frame_samples
        if self._resampler is not None:
            tail = np.concatenate([tail, self._resampler.flush()])
        if tail.size:  # pad the last partial frame with silence so it is heard
            padded = np.concatenate([tail, np.zeros(-tail.size % FRAME_SAMPLES, np.float32)])
            self._pending_frame_samples = np.zeros(0, np.float32)
            self._frames(padded)
        boundary = self.endpointer.flush()
        if boundary is not None:
            self._on_boundary(boundary)
        self.flushed = True
