"""Pieces shared by the benchmarks: prompt selection, call audio, WER, RSS."""
from __future__ import annotations

import functools
import wave
from pathlib import Path
from typing import List, Sequence, Tuple

from audiosocket_bridge.audiosocket import slin
from tests.support.prompts import Prompt, english_prompts, resample_pcm
from whisper.evaluation import english_wer, normalize_english, word_edit_distance

PAUSE_S = 1.2  # silence after each prompt


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@functools.lru_cache(maxsize=1)
def usable_prompts() -> Tuple[Prompt, ...]:
    """Prompts of 1-6 s with at least two words, leaving out silence ("(1 second of silence)")."""
    usable = []
    for p in english_prompts():
        if not normalize_english(p.text).strip():  # the reference only describes non-speech
            continue
        with wave.open(str(p.path)) as w:
            if 1.0 <= w.getnframes() / w.getframerate() <= 6.0 and len(p.text.split()) >= 2:
                usable.append(p)
    return tuple(usable)


def pick_prompts(n_streams: int, per_stream: int, shift: int = 0) -> List[List[Prompt]]:
    """A different rotation of usable prompts per stream; `shift` gives another draw (re-dialled calls)."""
    usable = usable_prompts()
    step = max(1, len(usable) // max(1, n_streams))
    return [[usable[(s * step + k * 7 + shift) % len(usable)] for k in range(per_stream)]
            for s in range(n_streams)]


def stream_audio(prompts: Sequence[Prompt], pause_s: float = PAUSE_S, sample_rate_hz: int = 8000):
    """One call's audio: each prompt then `pause_s` of silence.

    Returns (pcm, starts, ends): the 20 ms frame index of each prompt's first and last frame.
    """
    frame_bytes = slin.frame_bytes(sample_rate_hz)
    pcm, ends, starts = b"", [], []
    for p in prompts:
        audio = resample_pcm(p.pcm, 8000, sample_rate_hz)
        starts.append(len(pcm) // frame_bytes)
        pcm += audio
        ends.append(len(pcm) // frame_bytes - 1 + (1 if len(pcm) % frame_bytes else 0))
        pcm += bytes(int(pause_s * sample_rate_hz) * 2)
    return pcm, starts, ends


def word_errors(ref: str, hyp: str) -> Tuple[int, int]:
    """(edit distance, reference words) after Whisper's English normalisation."""
    r, h = normalize_english(ref).split(), normalize_english(hyp).split()
    return word_edit_distance(r, h), len(r)


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Pooled WER: all edits over all reference words."""
    return english_wer(refs, hyps)
