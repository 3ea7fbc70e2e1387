"""Telephone accuracy: spoken digit strings live (streamed) against offline, with and without a
digits grammar, and words produced on non-speech.

    python -m benchmarks.telephone_accuracy [--strings 20] [--seed 1]
    python -m benchmarks.telephone_accuracy --voices en es fr it ru es-co fr-armelle it-menardi  # base
    python -m benchmarks.telephone_accuracy --voices es it --digits 13-16  # card numbers, 13-22 s each

Digit strings of 7-10 digits (``--digits``) are spliced from the Asterisk voice's digits/N.wav
with pauses of 0.2-0.8 s between digits (as a caller reads a number); live is the streaming engine
fed the call as 20 ms frames with partials on, as the bridge runs it (deterministic simulation: the
events a real-time call gets from an infinitely fast model), offline is ``model.transcribe()`` of
the same audio (its text in numerals if it is digit words only, as the engine writes an
utterance). The digit error rate is the edit distance between
the digits said and the digits written, over the digits said; "loops cut" counts the loops
(whisper.loops) cut out of all the decodes of the three runs, fallbacks and partials included.

``--voices`` reads the strings in other voices and languages with the multilingual ``base``:
Asterisk's core voices and three held-out speakers from other Debian prompt packages
(audiosocket_bridge/testing/voices.py), the call's language given as the IVR's dialplan would.
"""
from __future__ import annotations

import argparse
import logging
import random
from typing import Callable, Dict, List, Optional, Tuple

import whisper
from audiosocket_bridge.testing.nonspeech import non_speech
from whisper.audio import int16_to_float, resample
from whisper.streaming import EngineOptions, StreamingEngine
from whisper.streaming.sim import simulate
from whisper.streaming.types import StreamOptions
from whisper.evaluation import word_edit_distance
from whisper.numbers import digits_as_numerals

from ._common import cpu_description
from audiosocket_bridge.testing.voices import CORE, VOICES, digit_recordings, voice_language

RATE_HZ = 8000


def digit_call(rng: random.Random, recordings: Optional[Dict[str, bytes]] = None,
               lengths: Tuple[int, int] = (7, 10)) -> Tuple[str, bytes]:  # fmt: skip
    """A digit string of ``lengths`` digits (a range, both ends included) read by the voice of
    ``recordings`` (digit -> 8 kHz slin; the English core voice if None) with pauses of 0.2-0.8 s."""
    digits = "".join(str(rng.randrange(10)) for _ in range(rng.randrange(lengths[0], lengths[1] + 1)))
    recordings = recordings or digit_recordings("en")
    pieces = []
    for digit in digits:
        pieces.append(recordings[digit])
        pieces.append(bytes(2 * int(RATE_HZ * rng.uniform(0.2, 0.8))))
    return digits, b"".join(pieces) + bytes(2 * RATE_HZ)


def written_digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def live(engine: StreamingEngine, pcm: bytes, grammar: Optional[str] = None, language: Optional[str] = None) -> str:
    """The finals' text, partials on as the bridge runs calls."""
    events = simulate(engine, pcm, RATE_HZ, StreamOptions(partials=True, grammar=grammar, language=language))
    return " ".join(e.text for e in events if e.is_final)


def offline(model, pcm: bytes, language: Optional[str] = None) -> str:
    audio = resample(int16_to_float(pcm), RATE_HZ)  # as live and transcribe() of an 8 kHz file resample
    return digits_as_numerals(model.transcribe(audio, temperature=0.0, language=language)["text"], language or "en")


class LoopCounter(logging.Handler):
    """Counts the loops cut out of decodes (whisper.decoding logs each decode that had some)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self._logger = logging.getLogger("whisper.decoding")

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("cut "):
            self.count += int(record.args[0])

    def __enter__(self) -> "LoopCounter":
        self._level = self._logger.level
        self._logger.addHandler(self)
        self._logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc_info) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)


def digit_error_rate(calls: List[Tuple[str, bytes]], transcribe: Callable[[bytes], str]) -> float:
    errors = sum(word_edit_distance(list(said), list(written_digits(transcribe(pcm)))) for said, pcm in calls)
    return errors / sum(len(said) for said, _ in calls)


def non_speech_words(engine: StreamingEngine) -> Dict[str, int]:
    counts = {"finals": 0, "partials": 0}
    for name, pcm in non_speech().items():
        for event in simulate(engine, pcm, RATE_HZ, StreamOptions(partials=True), stream_id=name):
            counts["finals" if event.is_final else "partials"] += len(event.text.split())
    return counts


def voice_rates(model, engine: StreamingEngine, voice: str, args: argparse.Namespace) -> Dict[str, float]:
    """Digit error rates for one voice, its language given as an IVR's dialplan would."""
    recordings, language = digit_recordings(voice), voice_language(voice)
    rng = random.Random(args.seed)
    calls = [digit_call(rng, recordings, args.digits) for _ in range(args.strings)]
    grammar = digits_grammar(args.digits)
    with LoopCounter() as loops:
        return {
            "offline": digit_error_rate(calls, lambda pcm: offline(model, pcm, language)),
            "live, free": digit_error_rate(calls, lambda pcm: live(engine, pcm, language=language)),
            "live, grammar": digit_error_rate(calls, lambda pcm: live(engine, pcm, grammar, language)),
            "loops": loops.count,
        }


def digits_grammar(lengths: Tuple[int, int]) -> str:
    return "digits:{}-{}".format(*lengths)


def digit_range(text: str) -> Tuple[int, int]:
    low, _, high = text.partition("-")
    lengths = int(low), int(high or low)
    if not 1 <= lengths[0] <= lengths[1]:
        raise argparse.ArgumentTypeError(f"not a range of string lengths: {text!r}")
    return lengths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strings", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--digits", type=digit_range, default=(7, 10), metavar="MIN-MAX",
                        help="digits per string (default 7-10; 13-16 for card numbers); the grammar is digits:MIN-MAX")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--voices", nargs="+", metavar="VOICE",
                        help=f"instead: digit strings by these voices ({', '.join(VOICES)} or espeak:VOICE), "
                        "with --model (tiny.en: base where a voice is not English)")
    args = parser.parse_args()
    if args.voices:
        return main_voices(args)
    model = whisper.load_model(args.model)
    engine = StreamingEngine(model, EngineOptions())
    rng = random.Random(args.seed)
    calls = [digit_call(rng, lengths=args.digits) for _ in range(args.strings)]
    print(f"CPU: {cpu_description()}; model {args.model}; {len(calls)} digit strings, "
          f"{sum(len(d) for d, _ in calls)} digits")
    grammar = digits_grammar(args.digits)
    with LoopCounter() as loops:
        rates = {
            "offline transcribe()": digit_error_rate(calls, lambda pcm: offline(model, pcm)),
            "live, free": digit_error_rate(calls, lambda pcm: live(engine, pcm)),
            f"live, grammar {grammar}": digit_error_rate(calls, lambda pcm: live(engine, pcm, grammar)),
        }
    for name, rate in rates.items():
        print(f"  digit error rate, {name:<28} {rate:6.1%}")
    print(f"  loops cut out of decodes (all three): {loops.count}")
    words = non_speech_words(engine)
    print(f"  words on 14 non-speech sounds: {words['finals']} in finals, {words['partials']} in partials")
    print("  other voices and languages: --voices; multilingual prompts: benchmarks.multilingual")


def main_voices(args: argparse.Namespace) -> None:
    models: Dict[str, object] = {}
    print(f"CPU: {cpu_description()}; {args.strings} digit strings of {args.digits[0]}-{args.digits[1]} digits "
          f"per voice, seed {args.seed}; digit error rate, the call's language given")
    print(f"{'voice':<16} {'model':<8} {'held out':>8} {'offline':>8} {'live, free':>11} {'live, grammar':>14} "
          f"{'loops cut':>9}")
    for voice in args.voices:
        name = "base" if args.model.endswith(".en") and voice_language(voice) != "en" else args.model
        if name not in models:
            models[name] = whisper.load_model(name)
        rates = voice_rates(models[name], StreamingEngine(models[name], EngineOptions()), voice, args)
        print(f"{voice:<16} {name:<8} {'yes' if voice not in CORE else 'no':>8} {rates['offline']:>8.1%} "
              f"{rates['live, free']:>11.1%} {rates['live, grammar']:>14.1%} {rates['loops']:>9}", flush=True)


if __name__ == "__main__":
    main()
