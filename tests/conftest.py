"""Shared fixtures: the real tiny.en model, a started streaming engine on it, a real PostgreSQL."""
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


@pytest.fixture(scope="session")
def postgres_server_url():
    from tests.support.postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server_url):
    """A fresh, empty database of its own for each test."""
    from tests.support.postgres import new_database

    return new_database(postgres_server_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A database several bridges can share: SQLite in the test's folder, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shared.db"
    return request.getfixturevalue("postgres_url")
