"""Calls as callers speak them, for the benchmarks and the tests: Asterisk's prompts of every
length, long sentences with numbers in prose read by other voices (espeak-ng), some with a pause in
the middle; the whole call then through a telephone line: pink noise at a given SNR and G.711 (sox).

Each clip's speech span is found on the clean clip, so latency can be measured from the end of the
caller's speech, not of the clip's trailing silence.
"""
from __future__ import annotations

import random
import subprocess
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .prompts import english_prompts
from .voices import espeak
from whisper.evaluation import normalize_english

RATE_HZ = 8000
FRAME_SAMPLES = RATE_HZ // 50  # 20 ms
MARGIN_S = 0.15  # silence kept around each clip's speech
BUCKETS_S = ((0.0, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 30.0))
LATE_S = 1.0  # a final later than this is "late" in the breakdown
ESPEAK_VOICES = ("en-us", "en-gb+f3", "en+m3", "en-us+f2", "en-gb-x-rp+m5")
# What callers say: long turns, numbers inside prose.
SENTENCES = (
    "I would like to change the delivery address on my order because I moved to a new flat last month.",
    "My account number is 4 7 1 1 2 and I was charged twice for the same invoice in March.",
    "Could you please tell me when the technician will arrive, I have been waiting at home since 9 this morning.",
    "The parcel was supposed to arrive on Tuesday but the tracking page still says it is in the warehouse.",
    "I called yesterday about the broken router and somebody promised to call me back within 2 hours.",
    "Please cancel the appointment on the 14th and book me for the following week if that is possible.",
    "We have 3 phones on this contract and only one of them can make calls to other countries.",
    "Yes, that is correct, my date of birth is the 5th of June and my postcode starts with 2 9.",
    "I think there is a mistake on the bill, it says 65 pounds but we agreed on 40 a month.",
    "My daughter lost her card on the train this afternoon and I would like to block it immediately.",
    "Can you send the contract to my email address again, the first one never arrived in my inbox.",
    "I have been a customer for more than 10 years and this is the first time I have had to complain.",
)


@dataclass(frozen=True)
class Clip:
    kind: str  # "prompt", "sentence", "paused"
    text: str
    pcm: bytes  # 8 kHz slin: MARGIN_S of silence, the speech, MARGIN_S of silence

    @property
    def speech_s(self) -> float:
        return len(self.pcm) / 2 / RATE_HZ - 2 * MARGIN_S


def speech_span(pcm: bytes) -> Tuple[int, int]:
    """[first, last] sample of a clean clip's speech: from the first to the last 20 ms frame
    within 35 dB of its loudest frame (and above -55 dBFS)."""
    samples = np.frombuffer(pcm, "<i2").astype(np.float64) / 32768
    n = len(samples) // FRAME_SAMPLES
    level = 10 * np.log10(np.mean(samples[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > max(-55.0, level.max() - 35.0))
    if not len(loud):
        return 0, len(samples) - 1
    return int(loud[0]) * FRAME_SAMPLES, (int(loud[-1]) + 1) * FRAME_SAMPLES - 1


def trimmed(pcm: bytes) -> bytes:
    """The clip's speech with MARGIN_S of silence either side (the clip's own silence dropped)."""
    first, last = speech_span(pcm)
    margin = bytes(2 * int(MARGIN_S * RATE_HZ))
    return margin + pcm[2 * first : 2 * (last + 1)] + margin


def prompt_clips(max_s: float = 25.0) -> List[Clip]:
    """Every English Asterisk prompt with two words or more and up to ``max_s`` of speech."""
    clips = []
    for p in english_prompts():
        if len(p.text.split()) < 2 or not normalize_english(p.text).strip():
            continue
        clip = Clip("prompt", p.text, trimmed(p.pcm))
        if 0.5 <= clip.speech_s <= max_s:
            clips.append(clip)
    return clips


def sentence_clip(text: str, voice: str, pause_s: Optional[float] = None) -> Clip:
    """``text`` read by espeak-ng's ``voice``; with ``pause_s``, a pause that long at its middle word."""
    if pause_s is None:
        return Clip("sentence", text, trimmed(espeak(voice, text)))
    words = text.split()
    half = len(words) // 2
    first, second = trimmed(espeak(voice, " ".join(words[:half]))), trimmed(espeak(voice, " ".join(words[half:])))
    margin = 2 * int(MARGIN_S * RATE_HZ)
    pause = bytes(2 * int(pause_s * RATE_HZ))
    return Clip("paused", text, first[:-margin] + pause + second[margin:])


def call_clips(rng: random.Random, prompts: Sequence[Clip], n: int) -> List[Clip]:
    """A call's turns: prompts, read sentences and paused sentences in turn, prompts drawn evenly
    over their lengths (so long menus come as often as short ones)."""
    by_length = sorted(prompts, key=lambda c: c.speech_s)
    clips = []
    for k in range(n):
        kind = ("prompt", "sentence", "prompt", "paused")[k % 4]
        if kind == "prompt":
            bucket = rng.randrange(len(BUCKETS_S))
            low, high = BUCKETS_S[bucket]
            pool = [c for c in by_length if low <= c.speech_s < high] or by_length
            clips.append(rng.choice(pool))
        else:
            text, voice = rng.choice(SENTENCES), rng.choice(ESPEAK_VOICES)
            clips.append(sentence_clip(text, voice, rng.uniform(0.35, 0.7) if kind == "paused" else None))
    return clips


def _frame_aligned(pcm: bytes) -> bytes:
    return pcm + bytes(-len(pcm) % (2 * FRAME_SAMPLES))


def call_audio(clips: Sequence[Clip], rng: random.Random) -> Tuple[bytes, List[int], List[int]]:
    """The clean call: 0.5 s of silence, then each clip and 1.0-1.6 s of silence. Returns (pcm,
    starts, ends): the 20 ms frames where each clip's speech starts and ends."""
    pcm = bytes(2 * RATE_HZ // 2)
    starts, ends = [], []
    margin = int(MARGIN_S * RATE_HZ)
    for clip in clips:
        at = len(pcm) // 2
        starts.append((at + margin) // FRAME_SAMPLES)
        ends.append((at + len(clip.pcm) // 2 - margin - 1) // FRAME_SAMPLES)
        pcm = _frame_aligned(pcm + clip.pcm + bytes(2 * int(rng.uniform(1.0, 1.6) * RATE_HZ)))
    return pcm, starts, ends


def _sox(args: Sequence[str], stdin: bytes) -> bytes:
    try:
        return subprocess.run(["sox", *args], input=stdin, check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(f"sox failed ({error}); install sox") from error


def pink_noise(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power pink (1/f power) noise: white noise shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n_samples)
    return noise / np.sqrt(np.mean(noise**2))


def telephone_line(pcm: bytes, starts: Sequence[int], ends: Sequence[int], snr_db: Optional[float],
                   seed: int, ulaw: bool = True) -> bytes:
    """Pink noise ``snr_db`` below the speech's power (over its speech frames), then G.711 mu-law
    and back (sox)."""
    samples = np.frombuffer(pcm, "<i2").astype(np.float64)
    if snr_db is not None:
        speech = np.concatenate([samples[s * FRAME_SAMPLES : (e + 1) * FRAME_SAMPLES] for s, e in zip(starts, ends)])
        noise = pink_noise(len(samples), np.random.default_rng(seed))
        samples = samples + noise * np.sqrt(np.mean(speech**2) / 10 ** (snr_db / 10))
    pcm = np.clip(samples, -32768, 32767).astype("<i2").tobytes()
    if ulaw:
        raw = ["-t", "raw", "-r", str(RATE_HZ), "-e", "signed", "-b", "16", "-c", "1"]
        pcm = _sox(["-t", "ul", "-r", str(RATE_HZ), "-c", "1", "-", *raw, "-"], _sox([*raw, "-", "-t", "ul", "-"], pcm))
    return pcm


@dataclass(frozen=True)
class PlannedCall:
    clips: Tuple[Clip, ...]
    pcm: bytes  # as the line carries it
    starts: Tuple[int, ...]
    ends: Tuple[int, ...]


def plan_calls(n_calls: int, n_utterances: int, snr_db: Optional[float], seed: int, ulaw: bool) -> List[PlannedCall]:
    prompts = prompt_clips()
    calls = []
    for index in range(n_calls):
        rng = random.Random(seed * 100003 + index)
        clips = call_clips(rng, prompts, n_utterances)
        pcm, starts, ends = call_audio(clips, rng)
        line = telephone_line(pcm, starts, ends, snr_db, seed * 100003 + index, ulaw)
        calls.append(PlannedCall(tuple(clips), line, tuple(starts), tuple(ends)))
    return calls
