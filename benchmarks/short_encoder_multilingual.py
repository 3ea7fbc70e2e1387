"""The short encoder path on the multilingual base model: WER and language detection against the
full 30 s window on the same prompts, in the same process (issue 30).

    python -m benchmarks.short_encoder_multilingual [--per-language 12] [--languages it fr ru es en]
                                                    [--pads-ms 2000 5000]

Per prompt: the full window and the short path with each padding are encoded; the language is
detected on each encoding (the live path's detection, see "agree"); every encoding is then decoded
with the full window's language (as transcribe() does: it detects on the full window), temperature
0, with timestamps. WER as benchmarks.multilingual (lower case, no punctuation, numerals).
"""
from __future__ import annotations

import argparse
from typing import Dict, List, Sequence

import torch

import whisper
import whisper.model as whisper_model
from audiosocket_bridge.testing.prompts import Prompt, english_prompts
from whisper.audio import HOP_LENGTH, load_audio, log_mel_spectrogram, pad_or_trim
from whisper.decoding import DecodingOptions, detect_language

from ._common import cpu_description, encoder_ms_per_window
from .multilingual import basic_wer, sample


def prompts_for(language: str, count: int) -> List[Prompt]:
    if language != "en":
        return sample(language, count)
    prompts = english_prompts()
    return prompts[3 :: max(1, len(prompts) // count)][:count]


def run_side(model, prompts: Sequence[Prompt], pad_frames: int, languages: Sequence[str]) -> Dict[str, list]:
    """``pad_frames`` 0: the full window. ``languages``: what to decode each prompt in (empty: the
    language detected on this side's own encoding)."""
    model.short_encoder = pad_frames > 0
    whisper_model.SHORT_ENCODER_PAD_FRAMES = pad_frames or whisper_model.SHORT_ENCODER_PAD_FRAMES
    side: Dict[str, list] = {"detected": [], "texts": []}
    for i, prompt in enumerate(prompts):
        audio = load_audio(str(prompt.path))
        mel = log_mel_spectrogram(torch.from_numpy(pad_or_trim(audio)), model.dims.n_mels).unsqueeze(0)
        with torch.inference_mode():
            features = model.embed_audio(mel, content_frames=len(audio) // HOP_LENGTH)
            probabilities = detect_language(model, features)[1][0]
            side["detected"].append(max(probabilities, key=probabilities.get))
            language = languages[i] if languages else side["detected"][-1]
            options = DecodingOptions(language=language, temperature=0.0)
            side["texts"].append(whisper.decode(model, features[0], options).text)
    return side


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-language", type=int, default=12)
    parser.add_argument("--languages", nargs="+", default=["it", "fr", "ru", "es", "en"])
    parser.add_argument("--pads-ms", nargs="+", type=int, default=[2000, 5000])
    args = parser.parse_args(argv)
    model = whisper.load_model("base", device="cpu")
    default_pad = whisper_model.SHORT_ENCODER_PAD_FRAMES
    print(f"base on {cpu_description()}, {torch.get_num_threads()} threads")
    for language in args.languages:
        prompts = prompts_for(language, args.per_language)
        references = [p.text for p in prompts]
        numerals = None if language == "en" else language
        full = run_side(model, prompts, 0, [])
        for pad_ms in [0, *args.pads_ms]:
            side = full if pad_ms == 0 else run_side(model, prompts, pad_ms // 10, full["detected"])
            agree = sum(a == b for a, b in zip(side["detected"], full["detected"]))
            right = sum(code == language for code in side["detected"])
            same = sum(a.strip() == b.strip() for a, b in zip(side["texts"], full["texts"]))
            name = "full" if pad_ms == 0 else f"short +{pad_ms} ms"
            print(f"{language} {name:>14}: WER {basic_wer(references, side['texts'], numerals):6.1%}  "
                  f"language right {right}/{len(prompts)}, agrees with full {agree}  same text {same}", flush=True)
    model.short_encoder = True
    whisper_model.SHORT_ENCODER_PAD_FRAMES = default_pad
    full_ms, short_ms = encoder_ms_per_window(model)
    print(f"encoder per window: full {full_ms:.0f} ms, short (3 s audio +{default_pad * 10} ms) {short_ms:.0f} ms")


if __name__ == "__main__":
    main()
