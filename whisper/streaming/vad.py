"""Frame-level voice activity detection for 16 kHz telephone audio (pure numpy, no state but the noise floor).

A frame counts as speech when it is loud enough above the tracked noise floor and not tonal: single
and dual tones (beeps, DTMF, dial and busy tones) put nearly all their energy in one or two narrow
spectral peaks, which voiced speech, with its many harmonics and formants, never does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .pcm import FRAME_MS

SAMPLE_RATE_HZ = 16000  # what the model hears (audio.SAMPLE_RATE_HZ, here without importing torch)
FRAME_SAMPLES = SAMPLE_RATE_HZ * FRAME_MS // 1000  # 320 samples per 20 ms frame
_FFT_SIZE = 512
_LOBE_BINS = 7  # a windowed pure tone spreads over about seven bins (its Hann main lobe)


@dataclass(frozen=True)
class VadOptions:
    min_level_dbfs: float = -50.0  # quieter frames are never speech
    snr_db: float = 12.0  # speech must stand this far above the noise floor
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


class VoiceActivityDetector:
    def __init__(self, options: VadOptions = VadOptions()):
        self.options = options
        self.noise_floor_dbfs = -70.0
        self._window = np.hanning(FRAME_SAMPLES).astype(np.float32)
        self._peak_history: list[int] = []

    def classify(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(is_speech, level_dbfs) for a (n_frames, FRAME_SAMPLES) array of float samples."""
        level_dbfs = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
        tonality, peak_bins = self._tonality(frames)
        peak_hz = (peak_bins + _LOBE_BINS // 2) * SAMPLE_RATE_HZ / _FFT_SIZE
        tonal = self._steady_tones(tonality > self.options.max_tonality, peak_bins, peak_hz < self.options.min_tone_hz)
        is_speech = np.zeros(len(frames), dtype=bool)
        rise_per_frame = self.options.floor_rise_db_per_s * FRAME_MS / 1000
        for i, level in enumerate(level_dbfs):
            threshold = max(self.options.min_level_dbfs, self.noise_floor_dbfs + self.options.snr_db)
            is_speech[i] = level > threshold and not tonal[i]
            if level < self.noise_floor_dbfs:
                self.noise_floor_dbfs = 0.7 * self.noise_floor_dbfs + 0.3 * level  # fall fast
            else:
                self.noise_floor_dbfs += rise_per_frame  # rise slowly, so speech doesn't raise it much
        return is_speech, level_dbfs

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
