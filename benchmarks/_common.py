"""Pieces shared by the benchmarks: prompt selection, call audio, WER, RSS."""
from __future__ import annotations

import functools
import wave
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

from audiosocket_bridge.testing.prompts import Prompt, english_prompts, resample_pcm
from whisper.evaluation import english_wer, normalize_english, word_edit_distance
from whisper.streaming.pcm import frame_bytes

PAUSE_S = 1.2  # silence after each prompt


def rss_mib(child_pids: Sequence[int] = ()) -> float:
    """Resident memory of this process and the given children (engine workers), MiB."""
    return sum(process_rss_mib(pid) for pid in ("self", *child_pids))


def process_rss_mib(pid: Union[int, str]) -> float:
    """Resident memory of one process (a pid, or "self"), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


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
    size = frame_bytes(sample_rate_hz)
    pcm, ends, starts = b"", [], []
    for p in prompts:
        audio = resample_pcm(p.pcm, 8000, sample_rate_hz)
        starts.append(len(pcm) // size)
        pcm += audio
        ends.append(len(pcm) // size - 1 + (1 if len(pcm) % size else 0))
        pcm += bytes(int(pause_s * sample_rate_hz) * 2)
    return pcm, starts, ends


def word_errors(ref: str, hyp: str) -> Tuple[int, int]:
    """(edit distance, reference words) after Whisper's English normalisation."""
    r, h = normalize_english(ref).split(), normalize_english(hyp).split()
    return word_edit_distance(r, h), len(r)


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Pooled WER: all edits over all reference words."""
    return english_wer(refs, hyps)


def cpu_seconds(child_pids: Sequence[int] = ()) -> float:
    """CPU seconds (user + system) used so far by this process and the given running children."""
    import os
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    total_s = usage.ru_utime + usage.ru_stime
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    for pid in child_pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total_s += (int(fields[11]) + int(fields[12])) / ticks_per_s  # utime, stime
    return total_s


def cpu_description() -> str:
    """The CPU model and its bfloat16 matrix units, for every figure a benchmark prints."""
    model, flags = "unknown CPU", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    units = [name for name in ("amx_bf16", "avx512_bf16") if name in flags]
    amx = "AMX" if "amx_bf16" in flags else "no AMX"
    return f"{model} ({amx}; bf16 units: {', '.join(units) or 'none'})"


def encoder_ms_per_window(model, repeats: int = 3) -> Tuple[float, float]:
    """Median ms of one encoder pass: a whole 30 s window, and the short path for 3 s of audio."""
    import statistics
    import time

    import torch

    from whisper.audio import N_SAMPLES, log_mel_spectrogram

    mel = log_mel_spectrogram(torch.zeros(N_SAMPLES), model.dims.n_mels).unsqueeze(0).to(model.device)
    model.silent_features()  # built once per model, not part of a window's cost
    timings = {}
    for content_frames in (None, 300):
        samples = []
        for _ in range(repeats + 1):
            started_s = time.perf_counter()
            with torch.inference_mode():
                model.embed_audio(mel, content_frames=content_frames)
            samples.append(1000 * (time.perf_counter() - started_s))
        timings[content_frames] = statistics.median(samples[1:])  # the first pass warms up
    return timings[None], timings[300]


def decoder_ms_per_step(model, rows: Sequence[int] = (1, 8), steps: int = 20) -> Dict[int, float]:
    """Median ms of one decoding step (one token per row, after 20 tokens) for each number of rows.

    A step reads every decoder weight and the cross-attention keys and values (tiny.en: about 60 MB
    in float32), so it is bound by memory bandwidth, which differs between machines of one kind and,
    on a shared host, over time. Latency figures from different runs compare only with this figure
    beside them.
    """
    import statistics
    import time

    import torch

    from whisper.audio import N_SAMPLES, log_mel_spectrogram

    mel = log_mel_spectrogram(torch.zeros(N_SAMPLES), model.dims.n_mels).unsqueeze(0).to(model.device)
    timings = {}
    with torch.inference_mode():
        features = model.embed_audio(mel, content_frames=300)
        for count in rows:
            cache = model.decoder.new_cache(features.expand(count, -1, -1).contiguous())
            token = torch.full((count, 1), 440, device=model.device)  # any text token
            model.decoder(token.expand(count, 20).contiguous(), cache)
            samples = []
            for _ in range(steps):
                started_s = time.perf_counter()
                model.decoder(token, cache)
                samples.append(1000 * (time.perf_counter() - started_s))
            timings[count] = statistics.median(samples)
    return timings


def machine_speed(model_name: str, threads: int = 1) -> str:
    """One line on what this machine does now with ``model_name`` on ``threads`` threads: a
    decoding step and the short encoder (see decoder_ms_per_step)."""
    import torch

    import whisper

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = whisper.load_model(model_name, device="cpu")
        steps = decoder_ms_per_step(model)
        _, short_ms = encoder_ms_per_window(model)
    finally:
        torch.set_num_threads(previous)
    per_rows = ", ".join(f"{ms:.1f} ms for {rows} row{'s' if rows > 1 else ''}" for rows, ms in steps.items())
    return (f"machine now ({model_name}, {threads} thread{'s' if threads > 1 else ''}): decoding step {per_rows}; "
            f"short encoder {short_ms:.0f} ms for 3 s of audio")
