"""The streaming engine in a process of its own (whisper/streaming/process.py), with real tiny.en
weights and real prompts: the same events as in process, options refused in the parent, and a
child that dies fails its open streams instead of leaving them hanging."""
from __future__ import annotations

import pytest

from audiosocket_bridge import cli
from audiosocket_bridge.testing.prompts import english_prompts
from whisper.evaluation import english_wer
from whisper.streaming.process import EngineGone, EngineProcess, _child_send, _joined
from whisper.streaming.types import StreamOptions

FRAME_BYTES = 320  # 20 ms at 8 kHz


@pytest.fixture(scope="module")
def engine():
    started = EngineProcess("tiny.en")
    started.start()
    yield started
    started.stop()


def stream_prompts(engine, stream_id: str, prompts) -> list:
    events = []
    stream = engine.open_stream(stream_id, StreamOptions(), events.append)
    for prompt in prompts:
        pcm = prompt.pcm + bytes(16000)  # 1 s of silence after each prompt
        for offset in range(0, len(pcm), FRAME_BYTES):
            stream.push(pcm[offset : offset + FRAME_BYTES], 8000)
    stream.close().result(60)
    return events


def test_a_stream_through_the_engine_process_is_transcribed(engine):
    prompts = english_prompts()[:3]
    events = stream_prompts(engine, "call-1", prompts)
    finals = [e for e in events if e.is_final]
    assert finals and all(e.stream_id == "call-1" for e in events)
    assert [e.segment_index for e in finals] == list(range(len(finals)))
    text = " ".join(e.text for e in finals)
    assert english_wer([" ".join(p.text for p in prompts)], [text]) < 0.25, text
    assert finals[0].words and finals[0].words[0].start_s >= 0.0
    assert engine.is_alive() and engine.stats().window_cost_s > 0  # stats come from the child


def test_an_engine_process_with_int8_decoder_layers_transcribes():
    """``audiosocket-bridge --quantize``: the child loads the model with its decoder's linear
    layers in int8 and still transcribes real prompts."""
    quantized = EngineProcess("tiny.en", quantize=True)
    quantized.start()
    try:
        prompts = english_prompts()[:3]
        finals = [e for e in stream_prompts(quantized, "call-q", prompts) if e.is_final]
        text = " ".join(e.text for e in finals)
        assert english_wer([" ".join(p.text for p in prompts)], [text]) < 0.25, text
    finally:
        quantized.stop()


def test_bad_options_are_refused_in_the_parent(engine):
    with pytest.raises(ValueError, match="English-only"):
        engine.open_stream("call-2", StreamOptions(language="de"))
    with pytest.raises(ValueError):
        engine.open_stream("call-3", StreamOptions(grammar="digits:9-3"))
    engine.open_stream("call-4").close().result(10)
    with pytest.raises(ValueError, match="already open"):
        stream = engine.open_stream("call-5")
        engine.open_stream("call-5")
    stream.close().result(10)


def test_pushes_of_a_stream_are_joined_in_order():
    items = [("open", "a", None), ("push", "a", 8000, b"12"), ("push", "a", 8000, b"34"),
             ("push", "b", 8000, b"x"), ("push", "a", 16000, b"56"), ("close", "a")]
    assert _joined(items) == [("open", "a", None), ("push", "a", 8000, b"1234"), ("push", "b", 8000, b"x"),
                              ("push", "a", 16000, b"56"), ("close", "a")]


def test_fresh_stats_go_before_each_closed():
    """Whoever waited for a close reads stats that count its stream, however soon after the last."""
    import queue

    class Engine:
        calls = 0

        def stats(self):
            self.calls += 1
            return self.calls

    class Connection:
        def __init__(self):
            self.sent = []

        def send(self, message):
            self.sent.append(message)

    outgoing, connection = queue.Queue(), Connection()
    for item in [("event", "e1"), ("closed", "a", None), ("event", "e2"), ("closed", "b", None), None]:
        outgoing.put(item)
    _child_send(connection, outgoing, Engine())
    kinds = [m[0] if m[0] != "stats" else f"stats{m[1]}" for m in connection.sent]
    assert kinds == ["stats1", "event", "stats2", "closed", "event", "stats3", "closed"]


def test_a_dead_engine_process_fails_its_open_streams():
    engine = EngineProcess("tiny.en")
    engine.start()
    try:
        stream = engine.open_stream("call-6")
        stream.push(english_prompts()[0].pcm, 8000)
        engine._process.kill()
        engine._process.join(10)
        with pytest.raises(EngineGone):
            stream.close().result(10)
        assert not engine.is_alive()
        with pytest.raises(EngineGone):
            engine.open_stream("call-7")
    finally:
        engine.stop()


def test_the_flag():
    parsed = cli.load_config(cli.build_parser().parse_args(["--no-engine-process"]), {})
    assert parsed.engine_process is False
    assert cli.load_config(cli.build_parser().parse_args([]), {}).engine_process is True
    assert cli.load_config(cli.build_parser().parse_args([]), {"AUDIOSOCKET_ENGINE_PROCESS": "no"}).engine_process is False
