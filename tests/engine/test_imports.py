"""What importing costs: the pure modules load without torch; the public names still resolve."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("statement", [
    "import whisper",
    "from whisper.writers import format_timestamp",
    "import whisper.streaming.types",
    "from whisper.streaming import EngineOptions, TranscriptEvent",
    "import whisper.policy, whisper.streaming.endpointing",
    "import audiosocket_bridge.asterisk.ami_protocol",
    "import audiosocket_bridge.outputs.export",
    "import whisper.language, audiosocket_bridge.ami_servers, audiosocket_bridge.config",
    "import audiosocket_bridge.outputs.webhook",
    "from whisper.normalizers import EnglishTextNormalizer, BasicTextNormalizer",
    "import audiosocket_bridge.cli, audiosocket_bridge.recordings",
    "import whisper.streaming.interface, audiosocket_bridge.bridge",
])  # fmt: skip
def test_pure_modules_do_not_import_torch(statement):
    check = f"{statement}; import sys; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", check], cwd=ROOT, check=True, timeout=60)


def test_the_package_names_resolve_on_first_use():
    import whisper

    for name in ("load_model", "transcribe", "decode", "DecodingOptions", "DecodingResult", "log_mel_spectrogram",
                 "pad_or_trim", "load_audio", "detect_language", "available_models"):  # fmt: skip
        assert callable(getattr(whisper, name)), name
    with pytest.raises(AttributeError):
        whisper.no_such_name  # noqa: B018


def test_transcribe_stays_the_function_after_its_module_is_imported():
    code = ("import whisper, whisper.transcribe, sys; "
            "assert whisper.transcribe is sys.modules['whisper.transcribe'].transcribe")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
