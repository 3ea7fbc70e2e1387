"""Telephone accuracy: spoken digit strings live (streamed) against offline, with and without a
digits grammar, and words produced on non-speech.

    python -m benchmarks.telephone_accuracy [--strings 20] [--seed 1]

Digit strings of 7-10 digits are spliced from the Asterisk voice's digits/N.wav with pauses of
0.2-0.8 s between digits (as a caller reads a number); live is the streaming engine fed the call
as 20 ms frames (deterministic simulation: the events a real-time call gets from an infinitely fast
model), offline is ``model.transcribe()`` of the same audio. The digit error rate is the edit
distance between the digits said and the digits written, over the digits said.
"""
from __future__ import annotations

import argparse
import random
from typing import Callable, Dict, List, Tuple

import numpy as np

import whisper
from tests.support.nonspeech import non_speech
from tests.support.prompts import prompt, resample_pcm
from whisper.streaming import EngineOptions, StreamingEngine
from whisper.streaming.sim import simulate
from whisper.streaming.types import StreamOptions
from whisper.evaluation import word_edit_distance

from ._common import cpu_description

RATE_HZ = 8000


def digit_call(rng: random.Random) -> Tuple[str, bytes]:
    digits = "".join(str(rng.randrange(10)) for _ in range(rng.randrange(7, 11)))
    pieces = []
    for digit in digits:
        pieces.append(prompt(f"digits/{digit}").pcm)
        pieces.append(bytes(2 * int(RATE_HZ * rng.uniform(0.2, 0.8))))
    return digits, b"".join(pieces) + bytes(2 * RATE_HZ)


def written_digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def live(engine: StreamingEngine, pcm: bytes, grammar: str = None) -> str:
    events = simulate(engine, pcm, RATE_HZ, StreamOptions(partials=False, grammar=grammar))
    return " ".join(e.text for e in events if e.is_final)


def offline(model, pcm: bytes) -> str:
    audio = np.frombuffer(resample_pcm(pcm, RATE_HZ, 16000), "<i2").astype(np.float32) / 32768
    return model.transcribe(audio, temperature=0.0)["text"]


def digit_error_rate(calls: List[Tuple[str, bytes]], transcribe: Callable[[bytes], str]) -> float:
    errors = sum(word_edit_distance(list(said), list(written_digits(transcribe(pcm)))) for said, pcm in calls)
    return errors / sum(len(said) for said, _ in calls)


def non_speech_words(engine: StreamingEngine) -> Dict[str, int]:
    counts = {"finals": 0, "partials": 0}
    for name, pcm in non_speech().items():
        for event in simulate(engine, pcm, RATE_HZ, StreamOptions(partials=True), stream_id=name):
            counts["finals" if event.is_final else "partials"] += len(event.text.split())
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strings", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", default="tiny.en")
    args = parser.parse_args()
    model = whisper.load_model(args.model)
    engine = StreamingEngine(model, EngineOptions())
    rng = random.Random(args.seed)
    calls = [digit_call(rng) for _ in range(args.strings)]
    print(f"CPU: {cpu_description()}; model {args.model}; {len(calls)} digit strings, "
          f"{sum(len(d) for d, _ in calls)} digits")
    rates = {
        "offline transcribe()": digit_error_rate(calls, lambda pcm: offline(model, pcm)),
        "live, free": digit_error_rate(calls, lambda pcm: live(engine, pcm)),
        "live, grammar digits:7-10": digit_error_rate(calls, lambda pcm: live(engine, pcm, "digits:7-10")),
    }
    for name, rate in rates.items():
        print(f"  digit error rate, {name:<28} {rate:6.1%}")
    words = non_speech_words(engine)
    print(f"  words on 14 non-speech sounds: {words['finals']} in finals, {words['partials']} in partials")
    print("  multilingual (es/fr/it/ru prompts with the base model): not measured here")


if __name__ == "__main__":
    main()
