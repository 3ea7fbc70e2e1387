"""Custom vocabulary: recall of a call's own words (made-up product names and surnames said in
sentences by espeak-ng voices) with and without ``DecodingOptions.vocabulary``, and what the
vocabulary costs on speech that does not contain them (WER on Asterisk's English prompts).

    python -m benchmarks.vocabulary [--voices en-us en-gb+f3] [--prompts 40] [--model tiny.en]
                                    [--bonus 4.0] [--margin 6.0]

Each sentence is one window decoded greedily (``transcribe_batch``, as the engine decodes an
utterance); a phrase counts as recalled when the transcript contains it, case and punctuation
aside.
"""
from __future__ import annotations

import argparse
import re
from typing import List, Optional, Sequence, Tuple

import whisper
from audiosocket_bridge.testing.prompts import english_prompts
from audiosocket_bridge.testing.voices import espeak
from whisper.audio import int16_to_float, resample
from whisper.evaluation import english_wer
from whisper.transcribe import transcribe_batch
from whisper.vocabulary import Vocabulary

from ._common import cpu_description

PRODUCTS = ("Zorblax", "Quentara", "Velmorix", "Brontello", "Kashvani")
SURNAMES = ("Okonkwo", "Przybylski", "Thorvaldsen", "Nakashima", "Abernathy")
SENTENCES = ("I would like to order the {} please.", "Can you put me through to {}?",
             "My problem is with {} since last week.")  # fmt: skip


def phrase_calls(voice: str) -> List[Tuple[str, bytes]]:
    """(phrase, 8 kHz slin of a sentence that says it) for every phrase and sentence."""
    return [(phrase, espeak(voice, sentence.format(phrase)))
            for phrase in PRODUCTS + SURNAMES for sentence in SENTENCES]  # fmt: skip


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def recall(model, calls: Sequence[Tuple[str, bytes]], vocabulary: Optional[Vocabulary]) -> float:
    audios = [resample(int16_to_float(pcm), 8000) for _, pcm in calls]
    results = transcribe_batch(model, audios, batch_size=10, vocabulary=vocabulary, without_timestamps=True)
    found = sum(f" {_words(phrase)} " in f" {_words(r['text'])} " for (phrase, _), r in zip(calls, results))
    return found / len(calls)


def prompt_wer(model, count: int, vocabulary: Optional[Vocabulary]) -> float:
    short = [p for p in english_prompts() if p.path.stat().st_size < 8000 * 2 * 6]
    sample = short[:: max(1, len(short) // count)][:count]
    results = transcribe_batch(model, [p.path for p in sample], batch_size=10, vocabulary=vocabulary)
    return english_wer([p.text for p in sample], [r["text"] for r in results])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", nargs="+", default=["en-us", "en-gb+f3"])
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--bonus", type=float, default=Vocabulary.bonus_logit, help="Vocabulary.bonus_logit")
    parser.add_argument("--margin", type=float, default=Vocabulary.margin, help="Vocabulary.margin")
    args = parser.parse_args()
    model = whisper.load_model(args.model)
    vocabulary = Vocabulary(PRODUCTS + SURNAMES, args.bonus, args.margin)
    print(f"CPU: {cpu_description()}; model {args.model}; {len(PRODUCTS + SURNAMES)} phrases x "
          f"{len(SENTENCES)} sentences per voice; bonus {vocabulary.bonus_logit}, margin {vocabulary.margin}")
    print(f"{'voice':<12} {'recall, none':>13} {'recall, vocabulary':>19}")
    for voice in args.voices:
        calls = phrase_calls(voice)
        print(f"{voice:<12} {recall(model, calls, None):>13.1%} {recall(model, calls, vocabulary):>19.1%}",
              flush=True)
    print(f"WER on {args.prompts} Asterisk prompts (none of the phrases): without {prompt_wer(model, args.prompts, None):.1%}, "
          f"with the vocabulary {prompt_wer(model, args.prompts, vocabulary):.1%}")


if __name__ == "__main__":
    main()
