"""Frame-level voice activity detection for 16 kHz telephone audio (pure numpy, no state but the noise floor).

A frame counts as speech when it is loud enough above the tracked noise floor and not tonal: single
and dual tones (beeps, DTMF, dial and busy tones) put nearly all their energy in one or two narrow
spectral peaks, which voiced speech, with its many harmonics and formants, never does.
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np

from .pcm import FRAME_MS

SAMPLE_RATE_HZ = 16000  # what the model hears (audio.SAMPLE_RATE_HZ, here without importing torch)
FRAME_SAMPLES = SAMPLE_RATE_HZ * FRAME_MS // 1000  # 320 samples per 20 ms frame
_FFT_SIZE = 512
_FLOOR_BLOCKS = 10  # the noise floor's window is kept as the minima of this many blocks
_LOBE_BINS = 7  # a windowed pure tone spreads over about seven bins (its Hann main lobe)


@dataclass(frozen=True)
class VadOptions:
    min_level_dbfs: float = -50.0  # quieter frames are never speech
    # Speech must stand this far above the noise floor (smoothed, see smooth_frames): with the floor
    # at a steady noise's quietest frames (floor_window_s), 9 dB found the end of every utterance of
    # benchmarks.callmix at 5 dB SNR (pink noise, G.711) where 12 dB missed a third of its speech.
    snr_db: float = 9.0
    max_tonality: float = 0.9  # share of energy in the two strongest peaks above which a frame may be a tone
    tone_frames: int = 4  # ...and is one when its strongest peak held still this many frames
    # A peak below this frequency must hold still for low_tone_frames. No call-progress tone, DTMF
    # or fax tone is this low (the lowest, dial tones, are 340-500 Hz), while a voice's fundamental
    # (100-300 Hz) can hold nearly all of a vowel's energy and, this low, stays in one 31 Hz bin:
    # Asterisk's Russian "три" was taken for a tone from its second frame on and never opened an
    # utterance. Longer than a vowel holds its pitch, a low peak is mains hum.
    min_tone_hz: float = 320.0
    low_tone_frames: int = 20
    floor_rise_db_per_s: float = 1.0  # how fast the noise floor may climb during loud stretches
    # ... except that it is never below the quietest frame of the last floor_window_s: a line's
    # steady noise (pink noise at 5-15 dB under the speech, through G.711) is the floor that soon,
    # while speech always pauses quieter between words within that time. Climbing at 1 dB/s alone,
    # the floor took 30 s to reach such noise, every frame until then was speech, and utterances
    # ended only at the 12 s length limit.
    floor_window_s: float = 2.0
    # On a noisy line (the floor within snr_db of min_level_dbfs), a frame is speech by the mean
    # power of it and the frames before it, this many in all: a steady noise's 20 ms frames stray
    # up to 8 dB above its median, 60 ms means about half as far, so speech 5-10 dB above the noise
    # is told from it, with fewer stray frames of noise as speech (any one of which restarts the
    # trailing silence that ends an utterance).
    smooth_frames: int = 3


class VoiceActivityDetector:
    def __init__(self, options: VadOptions = VadOptions()):
        self.options = options
        self.noise_floor_dbfs = -70.0
        self._window = np.hanning(FRAME_SAMPLES).astype(np.float32)
        self._peak_history: list[int] = []
        # The quietest level of each of the last blocks of frames (floor_window_s in all), and of the
        # block being filled: the window's minimum without a scan of every frame per frame.
        self._block_minima: collections.deque = collections.deque(maxlen=_FLOOR_BLOCKS)
        self._block_min_dbfs, self._block_frames = math.inf, 0
        self._recent_power = np.zeros(0)  # the last smooth_frames - 1 frames' power

    def classify(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(is_speech, level_dbfs) for a (n_frames, FRAME_SAMPLES) array of float samples."""
        level_dbfs = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
        tonality, peak_bins = self._tonality(frames)
        peak_hz = (peak_bins + _LOBE_BINS // 2) * SAMPLE_RATE_HZ / _FFT_SIZE
        tonal = self._steady_tones(tonality > self.options.max_tonality, peak_bins, peak_hz < self.options.min_tone_hz)
        is_speech = np.zeros(len(frames), dtype=bool)
        rise_per_frame = self.options.floor_rise_db_per_s * FRAME_MS / 1000
        for i, (level, smoothed) in enumerate(zip(level_dbfs.tolist(), self._smoothed(level_dbfs).tolist())):
            noisy = self.noise_floor_dbfs + self.options.snr_db > self.options.min_level_dbfs
            threshold = max(self.options.min_level_dbfs, self.noise_floor_dbfs + self.options.snr_db)
            # On a quiet line a frame's own level is enough, and ends speech 40 ms sooner.
            is_speech[i] = (smoothed if noisy else level) > threshold and not tonal[i]
            window_min = self._window_min_dbfs(level)
            if level < self.noise_floor_dbfs:
                self.noise_floor_dbfs = 0.7 * self.noise_floor_dbfs + 0.3 * level  # fall fast
            else:  # rise slowly, so speech doesn't raise it much, but to a steady noise's level soon
                self.noise_floor_dbfs = max(self.noise_floor_dbfs + rise_per_frame, window_min)
        return is_speech, level_dbfs

    def _smoothed(self, level_dbfs: np.ndarray) -> np.ndarray:
        """Each frame's level as the mean power of it and the smooth_frames - 1 frames before it."""
        power = np.concatenate([self._recent_power, 10 ** (level_dbfs / 10)])
        n = self.options.smooth_frames
        self._recent_power = power[len(power) - (n - 1) :] if n > 1 else power[:0]
        if len(power) < n:
            return level_dbfs
        means = np.convolve(power, np.full(n, 1 / n), mode="valid")
        return 10 * np.log10(np.concatenate([10 ** (level_dbfs[: len(level_dbfs) - len(means)] / 10), means]))

    def _window_min_dbfs(self, level: float) -> float:
        """Takes in one frame's level; the quietest of the last floor_window_s (-inf until that
        much audio is in)."""
        self._block_min_dbfs = min(self._block_min_dbfs, level)
        self._block_frames += 1
        block_frames = max(1, round(self.options.floor_window_s * 1000 / FRAME_MS / _FLOOR_BLOCKS))
        if self._block_frames >= block_frames:
            self._block_minima.append(self._block_min_dbfs)
            self._block_min_dbfs, self._block_frames = math.inf, 0
        if len(self._block_minima) < _FLOOR_BLOCKS:
            return -math.inf
        return min(min(self._block_minima), self._block_min_dbfs)

    def _tonality(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per frame: the share of its energy in its two strongest peaks, and the lower peak's
        first bin."""
        power = np.abs(np.fft.rfft(frames * self._window, n=_FFT_SIZE, axis=1)) ** 2
        total = power.sum(axis=1) + 1e-12
        # Sum each bin's main-lobe neighbourhood; smoothed[:, k] covers bins k .. k + _LOBE_BINS - 1.
        smoothed = np.stack([power[:, k : power.shape[1] - _LOBE_BINS + 1 + k] for k in range(_LOBE_BINS)]).sum(axis=0)
        first = smoothed.argmax(axis=1)
        rows = np.arange(len(frames))
        peak1 = smoothed[rows, first]
        masked = smoothed.copy()
        neighbourhood = np.clip(first[:, None] + np.arange(-6, 7), 0, masked.shape[1] - 1)
        masked[rows[:, None], neighbourhood] = 0
        second = masked.argmax(axis=1)
        peak2 = masked[rows, second]
        # Identify the peak pair by its lower bin, so two equal tones (DTMF) don't swap places.
        return (peak1 + peak2) / total, np.minimum(first, np.where(peak2 > 0.1 * peak1, second, first))

    def _steady_tones(self, peaky: np.ndarray, peak_bins: np.ndarray, low: np.ndarray) -> np.ndarray:
        """Peaky frames whose main peak stayed within one bin over the last few frames (many more
        for a ``low`` peak).

        Voiced speech can be as peaky as a tone for a frame or two, but its pitch glides.
        """
        options = self.options
        steady = np.zeros(len(peaky), dtype=bool)
        kept = max(options.tone_frames, options.low_tone_frames)
        for i, (is_peaky, peak, is_low) in enumerate(zip(peaky.tolist(), peak_bins.tolist(), low.tolist())):
            self._peak_history = (self._peak_history + [peak if is_peaky else -100])[-kept:]
            needed = options.low_tone_frames if is_low else options.tone_frames
            recent = self._peak_history[-needed:]
            steady[i] = len(recent) == needed and min(recent) >= 0 and max(recent) - min(recent) <= 1
        return steady
