"""Shared fixtures: the real tiny.en model and a started streaming engine on it."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ helpers: prompts, fake peers


@pytest.fixture(scope="session")
def tiny_model():
    import whisper

    return whisper.load_model("tiny.en", device="cpu")


@pytest.fixture(scope="session")
def real_engine(tiny_model):
    from whisper.streaming import EngineOptions, StreamingEngine

    engine = StreamingEngine(tiny_model, EngineOptions())
    engine.start()
    yield engine
    engine.stop()
