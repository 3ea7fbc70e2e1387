"""Redaction recall and false redactions on card numbers read aloud, through the live engine.

    python -m benchmarks.redaction [--items 8] [--seed 1] [--voices en espeak:en-us espeak:en-gb+f3]

For each voice: card numbers (Luhn-valid and not, 15 and 16 digits) read as callers do (in groups
of 4 with pauses, digit by digit, after "my card number is ..." where the voice can say it), then
the security code; and near misses that must stay (phone numbers, order numbers, dates, amounts,
short menu choices). Each is streamed through the engine with partials on as the bridge runs calls
(whisper.streaming.sim), and every partial and final goes through the call's CallRedactor, as in
the bridge. Printed per voice:
  leak-free cards   cards of which no 4 digits in a row reached any output (final or partial)
  digit recall      card digits said that no output shows, over card digits said
  false redactions  near misses with any [label] in their finals
Asterisk's core voices have digits only (no lead-in phrase, no near misses with words); espeak
voices read whole sentences.
"""
from __future__ import annotations

import argparse
import random
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

import whisper
from audiosocket_bridge.redaction import CallRedactor, luhn_valid
from audiosocket_bridge.testing.voices import RATE_HZ, _as_slin, digit_recordings, voice_language
from whisper.streaming import EngineOptions, StreamingEngine
from whisper.streaming.sim import simulate
from whisper.streaming.types import StreamOptions

from ._common import cpu_description

FOUR = re.compile(r"\d{4}")


class Item(NamedTuple):
    kind: str  # "card" or a near miss
    said: str  # the digits said (cards), or the sentence
    pcm: bytes


def card_number(rng: random.Random, valid: bool) -> str:
    length = rng.choice((15, 16))
    while True:
        digits = rng.choice("3456") + "".join(str(rng.randrange(10)) for _ in range(length - 1))
        if luhn_valid(digits) == valid:
            return digits


def grouped(digits: str, size: int = 4) -> List[str]:
    return [digits[i:i + size] for i in range(0, len(digits), size)]


def silence(seconds: float) -> bytes:
    return bytes(2 * int(RATE_HZ * seconds))


def espeak(voice: str, text: str) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "said.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True,
                       capture_output=True)
        return _as_slin(wav)


def digit_items(voice: str, rng: random.Random, count: int) -> List[Item]:
    """Asterisk voices: cards in groups, cards digit by digit, phone numbers, menu choices."""
    recordings = digit_recordings(voice)

    def read(groups: List[str], within_s: float, between_s: float) -> bytes:
        return b"".join(b"".join(recordings[d] + silence(within_s) for d in g) + silence(between_s)
                        for g in groups) + silence(1.5)

    items = []
    for index in range(count):
        card = card_number(rng, valid=index % 2 == 0)
        items.append(Item("card", card, read(grouped(card), 0.05, rng.uniform(0.6, 1.2))))
        phone = "".join(str(rng.randrange(10)) for _ in range(10))
        items.append(Item("phone", phone, read([phone[:3], phone[3:6], phone[6:]], 0.05, 0.5)))
    items.append(Item("menu", "1 4 6", read(["1", "4", "6"], 0.0, 0.8)))
    return items


def espeak_items(voice: str, rng: random.Random, count: int) -> List[Item]:
    """espeak voices: whole sentences with cards, codes, and near misses around them."""
    name = voice.split(":", 1)[1]
    items = []
    for index in range(count):
        card = card_number(rng, valid=index % 2 == 0)
        groups = ", ".join(" ".join(g) for g in grouped(card))
        code = "".join(str(rng.randrange(10)) for _ in range(3))
        lead = rng.choice(("My card number is", "The card is", "It's a Visa,", "Sure, it's"))
        sentence = f"{lead} {groups}. The security code is {' '.join(code)}."
        items.append(Item("card", card + code, espeak(name, sentence) + silence(1.5)))
        phone = "".join(str(rng.randrange(10)) for _ in range(10))
        order = "".join(str(rng.randrange(10)) for _ in range(8))
        for kind, text in (
                ("phone", f"Call me back on {' '.join(phone[:3])}, {' '.join(phone[3:6])}, {' '.join(phone[6:])}."),
                ("order", f"My order number is {' '.join(order)}."),
                ("date", f"The appointment is on the {rng.randrange(1, 28)}th of March 2026."),
                ("amount", f"That comes to {rng.randrange(100, 9000)} dollars and {rng.randrange(10, 99)} cents.")):
            items.append(Item(kind, text, espeak(name, text) + silence(1.5)))
    return items


def outputs(engine: StreamingEngine, item: Item, language: Optional[str]) -> tuple[List[str], List[str]]:
    """(finals, partials) as the sinks get them."""
    redactor, finals, partials = CallRedactor("pci"), [], []
    events = simulate(engine, item.pcm, RATE_HZ, StreamOptions(partials=True, language=language))
    for event in events:
        if event.is_final:
            finals += [e.text for e in redactor.final(event, event.end_s)]
        else:
            partials.append(redactor.partial(event, event.end_s).text)
    finals += [e.text for e in redactor.flush()]
    return finals, partials


def visible_card_digits(said: str, shown: List[str]) -> int:
    """How many of the card's digits appear in a row of 4 or more in any output."""
    visible = 0
    for text in shown:
        for run in re.findall(r"\d+", re.sub(r"(?<=\d)[\s,.-]+(?=\d)", "", text)):
            if len(run) >= 4 and run in said:
                visible = max(visible, len(run))
    return visible


def score(engine: StreamingEngine, items: List[Item], language: Optional[str]) -> Dict[str, float]:
    cards = [i for i in items if i.kind == "card"]
    misses = [i for i in items if i.kind != "card"]
    leak_free = digits_said = digits_shown = false = 0
    for item in cards:
        finals, partials = outputs(engine, item, language)
        shown = visible_card_digits(item.said, finals + partials)
        leak_free += shown == 0
        digits_said += len(item.said)
        digits_shown += shown
    for item in misses:
        finals, _ = outputs(engine, item, language)
        false += any("[" in text for text in finals)
    return {"cards": len(cards), "leak_free": leak_free / max(1, len(cards)),
            "recall": 1 - digits_shown / max(1, digits_said), "misses": len(misses),
            "false": false / max(1, len(misses))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=6, help="cards per voice (and as many of each near miss)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--voices", nargs="+", default=["en", "espeak:en-us", "espeak:en-gb+f3",
                                                         "espeak:en-us+m3"])
    args = parser.parse_args()
    print(f"CPU: {cpu_description()}; policy pci; {args.items} cards per voice, seed {args.seed}")
    print(f"{'voice':<18} {'model':<8} {'cards':>5} {'leak-free':>9} {'digit recall':>12} "
          f"{'near misses':>11} {'false redactions':>16}")
    models: Dict[str, object] = {}
    for voice in args.voices:
        language = voice_language(voice)
        name = "tiny.en" if language == "en" else "base"
        if name not in models:
            models[name] = whisper.load_model(name)
        engine = StreamingEngine(models[name], EngineOptions())
        rng = random.Random(f"{args.seed}-{voice}")
        items = (espeak_items if voice.startswith("espeak:") else digit_items)(voice, rng, args.items)
        result = score(engine, items, None if name == "tiny.en" else language)
        print(f"{voice:<18} {name:<8} {result['cards']:>5} {result['leak_free']:>9.1%} "
              f"{result['recall']:>12.1%} {result['misses']:>11} {result['false']:>16.1%}", flush=True)


if __name__ == "__main__":
    main()
