"""The engine pool supervises its worker processes (whisper/streaming/pool.py, failover.py), with
real tiny.en workers and real prompts: a worker SIGKILLed or SIGSTOPped mid-call is replaced, its
call goes on on another worker with its numbering and clock, new calls are served, and the call
on the healthy worker loses no final."""
from __future__ import annotations

import os
import signal
import time

import pytest

from audiosocket_bridge.testing.prompts import english_prompts
from whisper.evaluation import english_wer
from whisper.streaming.failover import shifted
from whisper.streaming.pool import EnginePool, Supervision
from whisper.streaming.process import _joined
from whisper.streaming.types import StreamOptions, TranscriptEvent, Word

FRAME_BYTES = 320  # 20 ms at 8 kHz


def play(stream, prompt) -> None:
    pcm = prompt.pcm + bytes(16000)  # 1 s of silence after the prompt: it becomes final
    for offset in range(0, len(pcm), FRAME_BYTES):
        stream.push(pcm[offset: offset + FRAME_BYTES], 8000)


def finals(events) -> list[TranscriptEvent]:
    return [e for e in events if e.is_final]


def wait_for(predicate, timeout_s: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def assert_heard(events, prompts) -> None:
    said = " ".join(p.text for p in prompts)
    heard = " ".join(e.text for e in finals(events))
    assert english_wer([said], [heard]) < 0.25, heard


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_a_worker_killed_or_hung_mid_call_is_replaced_and_its_call_goes_on(how):
    prompts = english_prompts()[:3]
    pool = EnginePool("tiny.en", 2, threads=1, supervision=Supervision(hang_after_s=3.0))
    pool.start()
    try:
        events = {"victim": [], "healthy": []}
        streams = {name: pool.open_stream(name, StreamOptions(), events[name].append) for name in events}
        victim_worker = pool._homes["victim"].worker
        assert pool._homes["healthy"].worker is not victim_worker
        for stream in streams.values():
            play(stream, prompts[0])
        assert wait_for(lambda: len(finals(events["victim"])) == 1)
        first = finals(events["victim"])[0]

        os.kill(victim_worker._process.pid, getattr(signal, how))
        assert wait_for(lambda: pool._homes["victim"].worker is not victim_worker, 30)
        assert not victim_worker.is_alive()
        play(streams["victim"], prompts[1])  # on its new worker
        play(streams["healthy"], prompts[1])
        for stream in streams.values():
            stream.close().result(90)

        victim = finals(events["victim"])
        assert [e.segment_index for e in victim] == list(range(len(victim)))  # numbering goes on
        assert victim[0] == first and victim[1].start_s >= first.end_s  # and so does its clock
        assert_heard(events["victim"][1:], prompts[1:2])
        assert_heard(events["healthy"], prompts[:2])  # no final of the healthy call lost
        assert streams["victim"].moves == 1

        assert wait_for(lambda: pool.is_alive() and pool.respawns == 1, 120)  # replaced
        later = []
        stream = pool.open_stream("later", StreamOptions(), later.append)
        play(stream, prompts[2])
        stream.close().result(90)
        assert_heard(later, prompts[2:3])
    finally:
        pool.stop()


def test_events_of_a_reopened_stream_continue_its_numbering_and_clock():
    event = TranscriptEvent("s", "final", 0, "hi", 0.5, 1.0, "en", -0.1, 0.0, (Word("hi", 0.5, 0.9, 0.9),))
    moved = shifted(event, 3, 10.0)
    assert (moved.segment_index, moved.start_s, moved.end_s) == (3, 10.5, 11.0)
    assert (moved.words[0].start_s, moved.words[0].end_s) == (10.5, 10.9)
    assert shifted(event, 0, 0.0) is event


def test_joining_pushes_is_linear():
    """4000 pushes joined used to copy the whole run each time (1.2 s on the event loop)."""
    items = [("push", "a", 8000, bytes(320))] * 20000 + [("close", "a")]
    joined = _joined(items)
    assert joined == [("push", "a", 8000, bytes(320 * 20000)), ("close", "a")]
