"""Shared fixtures: the real tiny.en model and a started streaming engine on it."""
from __future__ import annotations

import pytest


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
