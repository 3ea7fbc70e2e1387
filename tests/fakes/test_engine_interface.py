"""Every engine the bridge can be given has the interface it drives (whisper.streaming.interface):
the engine in process, in a child process, a pool of those, and the tests' fake, and their streams.

runtime_checkable only checks that the names exist; the signatures are compared too, so that an
implementation whose method lost a parameter (or its default) fails here, not in a call.
"""
from __future__ import annotations

import inspect

import pytest

from audiosocket_bridge.testing.fake_decoder import FakeDecoder, ManualClock
from tests.support.fake_engine import FakeEngine, FakeStream
from whisper.streaming.engine import StreamingEngine
from whisper.streaming.failover import PoolStream
from whisper.streaming.interface import Engine, EngineStream
from whisper.streaming.pool import EnginePool
from whisper.streaming.process import EngineProcess, RemoteStream
from whisper.streaming.stream import Stream

ENGINES = [StreamingEngine, EngineProcess, EnginePool, FakeEngine]
STREAMS = [Stream, RemoteStream, PoolStream, FakeStream]


def _members(protocol) -> list:
    return sorted(name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_"))


def _shape(function) -> list:
    """Parameter names, kinds and whether each has a default (self left out)."""
    parameters = list(inspect.signature(function).parameters.values())[1:]
    return [(p.name, p.kind, p.default is inspect.Parameter.empty) for p in parameters]


@pytest.mark.parametrize("protocol, implementation",
                         [(Engine, cls) for cls in ENGINES] + [(EngineStream, cls) for cls in STREAMS])
def test_each_implementation_has_the_protocols_methods_and_signatures(protocol, implementation):
    for name in _members(protocol):
        assert callable(getattr(implementation, name, None)), f"{implementation.__name__} lacks {name}"
        assert _shape(getattr(implementation, name)) == _shape(getattr(protocol, name)), \
            f"{implementation.__name__}.{name}"


def test_the_check_fails_for_a_method_that_lost_its_default():
    class Broken:
        def push(self, pcm: bytes, sample_rate_hz: int) -> None: ...

        def close(self): ...

    assert _shape(Broken.push) != _shape(EngineStream.push)


def test_built_engines_and_their_streams_are_instances():
    engines = [StreamingEngine(decoder=FakeDecoder(ManualClock())), EngineProcess("tiny.en"), EnginePool("tiny.en", 2),
               FakeEngine()]
    for engine in engines:
        assert isinstance(engine, Engine), type(engine).__name__
    in_process, fake = engines[0], engines[3]
    for engine in (in_process, fake):
        stream = engine.open_stream("call-1")
        assert isinstance(stream, EngineStream)
        stream.close()
    fake.stop()
    assert not isinstance(object(), Engine)
