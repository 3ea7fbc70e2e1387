"""``whisper`` command line: transcribe audio files and write transcripts and subtitles."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .audio import AudioError, load_audio
from .checkpoint import CheckpointError, available_models
from .tokenizer import LANGUAGES, TO_LANGUAGE_CODE
from .writers import WRITERS

EXIT_USAGE = 2


def str2bool(text: str) -> bool:
    values = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
    if text.lower() not in values:
        raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")
    return values[text.lower()]


def optional_float(text: str) -> Optional[float]:
    return None if text == "None" else float(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="whisper", description="Transcribe WAV files with our PyTorch Whisper.")
    add = parser.add_argument
    add("audio", nargs="+", help="WAV files to transcribe")
    add("--model", default="tiny.en", help=f"{', '.join(available_models())}, a .pt file or a CTranslate2 folder")
    add("--device", default=None, help="cpu or cuda (default: cuda when available)")
    add("--output_dir", "-o", default=".", help="where to write the transcripts")
    add("--output_format", "-f", default="all", choices=[*WRITERS, "all"])
    add("--verbose", type=str2bool, default=True, help="print segments as they are decoded")
    add("--task", default="transcribe", choices=["transcribe", "translate"])
    languages = sorted(LANGUAGES) + sorted(name.title() for name in TO_LANGUAGE_CODE)
    add("--language", default=None, choices=languages, help="spoken language (default: detect)")
    add("--temperature", type=float, default=0.0)
    add("--temperature_increment_on_fallback", type=optional_float, default=0.2,
        help="step between fallback temperatures up to 1.0; None disables fallback")  # fmt: skip
    add("--best_of", type=int, default=5, help="samples at non-zero temperature")
    add("--beam_size", type=int, default=5, help="beams at temperature 0")
    add("--patience", type=float, default=None)
    add("--initial_prompt", default=None, help="text to condition the first window on")
    add("--condition_on_previous_text", type=str2bool, default=True)
    add("--word_timestamps", type=str2bool, default=False)
    add("--max_line_width", type=int, default=None, help="subtitles: characters per line (needs word timestamps)")
    add("--max_words_per_line", type=int, default=None, help="subtitles: words per line, instead of a width")
    add("--max_line_count", type=int, default=None, help="subtitles: lines per cue")
    add("--highlight_words", type=str2bool, default=False, help="subtitles: underline each word as it is spoken")
    add("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    add("--quantize", action="store_true", help="int8 dynamic quantization of linear layers (CPU only)")
    return parser


def fail(message: str) -> None:
    print(f"whisper: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def load_inputs(paths: Sequence[str]) -> List[Tuple[str, np.ndarray]]:
    """Every input read up front, so a bad file stops the run before any model work."""
    inputs = []
    for path in paths:
        if not Path(path).is_file():
            fail(f"audio file not found: {path}")
        try:
            inputs.append((path, load_audio(path)))
        except AudioError as exc:
            fail(str(exc))
    return inputs


def subtitle_options(args: argparse.Namespace):
    from .writers import SubtitleOptions

    options = SubtitleOptions(args.max_line_width, args.max_words_per_line, args.max_line_count, args.highlight_words)
    for name in ("max_line_width", "max_words_per_line", "max_line_count"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            fail(f"--{name} must be at least 1")
    if options.max_line_width is not None and options.max_words_per_line is not None:
        fail("give --max_line_width or --max_words_per_line, not both")
    if options.uses_words and not args.word_timestamps:
        fail("--max_line_width, --max_words_per_line, --max_line_count and --highlight_words need --word_timestamps True")
    return options


def temperatures(args: argparse.Namespace) -> Tuple[float, ...]:
    if args.temperature_increment_on_fallback is None:
        return (args.temperature,)
    return tuple(np.arange(args.temperature, 1.0 + 1e-6, args.temperature_increment_on_fallback).tolist())


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    options = subtitle_options(args)
    inputs = load_inputs(args.audio)
    import torch

    from . import load_model
    from .transcribe import transcribe
    from .writers import get_writer

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.quantize and args.device not in (None, "cpu"):
        fail("--quantize works on the CPU only")
    try:
        model = load_model(args.model, device=args.device, quantize=args.quantize)
    except CheckpointError as exc:
        fail(str(exc))
    if args.language is not None:
        args.language = TO_LANGUAGE_CODE.get(args.language.lower(), args.language)
    if args.model.endswith(".en") and args.language not in (None, "en"):
        print(f"whisper: {args.model} is English-only; transcribing in English", file=sys.stderr)
        args.language = "en"
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    write = get_writer(args.output_format, args.output_dir)
    for path, audio in inputs:
        result = transcribe(
            model, audio, verbose=args.verbose, temperature=temperatures(args), task=args.task,
            language=args.language, best_of=args.best_of, beam_size=args.beam_size, patience=args.patience,
            initial_prompt=args.initial_prompt, condition_on_previous_text=args.condition_on_previous_text,
            word_timestamps=args.word_timestamps, fp16=args.device == "cuda",
        )  # fmt: skip
        write(result, path, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
