"""Shared fixtures: the real tiny.en model, a started streaming engine on it, a real PostgreSQL;
and the quick tier: the tests in unit/ and fakes/ (``pytest -m quick``)."""
from __future__ import annotations

from pathlib import Path

import pytest

QUICK_FOLDERS = ("unit", "fakes")  # no model, no Asterisk, PostgreSQL, HAProxy or browser


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).parent.name in QUICK_FOLDERS:
            item.add_marker(pytest.mark.quick)


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
