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

``--variants`` reads each voice's strings as they are (``plain``) and varied: ``fast`` (sox speed
1.15: faster and higher), ``low`` (sox pitch -300 cents), ``g711-noise`` (mu-law and back, white
noise at 15 dB SNR), one row each.

``--voices`` reads the strings in other voices and languages with the multilingual ``base``:
Asterisk's core voices and three held-out speakers from other Debian prompt packages
(audiosocket_bridge/testing/voices.py), the call's language given as the IVR's dialplan would.
"""
from __future__ import annotations

import argparse
import logging
import random
import subprocess
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

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


_SOX_VARIANTS = {"fast": ["speed", "1.15"], "low": ["pitch", "-300"]}
VARIANTS = ("plain", *_SOX_VARIANTS, "g711-noise")
_SLIN = ["-t", "raw", "-r", str(RATE_HZ), "-e", "signed", "-b", "16", "-c", "1"]


def varied(pcm: bytes, variant: str, rng: random.Random) -> bytes:
    """A call's 8 kHz slin as ``variant`` (VARIANTS) makes it."""
    if variant == "plain":
        return pcm
    if variant in _SOX_VARIANTS:
        return _sox(pcm, _SLIN + ["-"], _SOX_VARIANTS[variant])
    mu_law = _sox(pcm, ["-t", "raw", "-r", str(RATE_HZ), "-e", "mu-law", "-b", "8", "-c", "1", "-"])
    samples = np.frombuffer(_sox(mu_law, _SLIN + ["-"], input_type="mu-law"), np.int16).astype(np.float64)
    loud = samples[np.abs(samples) > 100]
    level = np.sqrt(np.mean(loud**2)) if len(loud) else 1000.0
    noise = np.random.default_rng(rng.randrange(2**32)).standard_normal(len(samples)) * level / 10 ** (15 / 20)
    return np.clip(samples + noise, -32768, 32767).astype(np.int16).tobytes()


def _sox(data: bytes, output: List[str], effects: Tuple[str, ...] = (), input_type: str = "signed") -> bytes:
    bits = "8" if input_type == "mu-law" else "16"
    command = ["sox", "-t", "raw", "-r", str(RATE_HZ), "-e", input_type, "-b", bits, "-c", "1", "-", *output, *effects]
    return subprocess.run(command, input=data, check=True, capture_output=True).stdout


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


def voice_rates(model, engine: StreamingEngine, voice: str, variant: str, args: argparse.Namespace
                ) -> Dict[str, float]:  # fmt: skip
    """Digit error rates for one voice, its language given as an IVR's dialplan would."""
    recordings, language = digit_recordings(voice), voice_language(voice)
    rng = random.Random(args.seed)
    calls = [digit_call(rng, recordings, args.digits) for _ in range(args.strings)]
    calls = [(said, varied(pcm, variant, rng)) for said, pcm in calls]
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
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=["plain"],
                        help="with --voices: each voice's strings varied so (default plain)")
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
    print(f"{'voice':<16} {'variant':<10} {'model':<8} {'held out':>8} {'offline':>8} {'live, free':>11} "
          f"{'live, grammar':>14} {'loops cut':>9}")
    for voice in args.voices:
        name = "base" if args.model.endswith(".en") and voice_language(voice) != "en" else args.model
        if name not in models:
            models[name] = whisper.load_model(name)
        for variant in args.variants:
            rates = voice_rates(models[name], StreamingEngine(models[name], EngineOptions()), voice, variant, args)
            print(f"{voice:<16} {variant:<10} {name:<8} {'yes' if voice not in CORE else 'no':>8} "
                  f"{rates['offline']:>8.1%} {rates['live, free']:>11.1%} {rates['live, grammar']:>14.1%} "
                  f"{rates['loops']:>9}", flush=True)


if __name__ == "__main__":
    main()
