"""Several engine processes behind one engine (whisper/streaming/pool.py), with real tiny.en weights
and real prompts: calls spread over the workers, each transcribed; stream names unique across the
pool; a dead worker fails only its own streams and new calls go to the living one."""
from __future__ import annotations

import pytest

from audiosocket_bridge import cli
from audiosocket_bridge.testing.prompts import english_prompts
from whisper.evaluation import english_wer
from whisper.streaming.pool import EnginePool, Supervision, combined_stats, plan_workers
from whisper.streaming.types import EngineStats, StreamOptions

FRAME_BYTES = 320  # 20 ms at 8 kHz


@pytest.fixture(scope="module")
def pool():
    started = EnginePool("tiny.en", 2, threads=1)
    started.start()
    yield started
    started.stop()


def play(stream, prompts) -> None:
    for prompt in prompts:
        pcm = prompt.pcm + bytes(16000)  # 1 s of silence after each prompt
        for offset in range(0, len(pcm), FRAME_BYTES):
            stream.push(pcm[offset : offset + FRAME_BYTES], 8000)


def final_text(events) -> str:
    return " ".join(e.text for e in events if e.is_final)


def test_calls_spread_over_the_workers_and_each_is_transcribed(pool):
    prompts = {"call-a": english_prompts()[:2], "call-b": english_prompts()[2:4]}
    events = {name: [] for name in prompts}
    streams = {name: pool.open_stream(name, StreamOptions(), events[name].append) for name in prompts}
    assert {id(pool._homes[name].worker) for name in prompts} == {id(w) for w in pool.workers}
    for name, stream in streams.items():
        play(stream, prompts[name])
    for stream in streams.values():
        stream.close().result(60)
    for name, said in prompts.items():
        reference = " ".join(p.text for p in said)
        assert english_wer([reference], [final_text(events[name])]) < 0.25, (name, final_text(events[name]))
        assert all(e.stream_id == name for e in events[name])
    stats = pool.stats()
    assert stats.finals_emitted >= 4 and stats.window_cost_s > 0
    assert stats.finals_emitted == sum(w.stats().finals_emitted for w in pool.workers)


def test_stream_names_are_unique_across_the_pool_until_closed(pool):
    first = pool.open_stream("same")
    with pytest.raises(ValueError, match="already open"):
        pool.open_stream("same")  # the other worker has room, but the name is taken
    first.close().result(10)
    pool.open_stream("same").close().result(10)
    with pytest.raises(ValueError, match="English-only"):
        pool.open_stream("french", StreamOptions(language="fr"))


def test_a_stream_closing_when_its_worker_dies_ends_and_new_calls_go_to_the_other():
    pool = EnginePool("tiny.en", 2, threads=1, supervision=Supervision(respawn_first_s=30.0,
                                                                       healthy_after_s=1e9))
    pool.start()
    try:
        doomed = pool.open_stream("doomed")
        victim = pool._homes["doomed"].worker
        victim._process.kill()
        doomed.close().result(30)  # ended (its last utterance lost) or moved: either way it ends
        assert not pool.is_alive()  # health checks see the loss until the worker is back
        events = []
        survivor = pool.open_stream("after", StreamOptions(), events.append)
        assert pool._homes["after"].worker is not victim
        play(survivor, english_prompts()[:1])
        survivor.close().result(60)
        assert english_wer([english_prompts()[0].text], [final_text(events)]) < 0.25, final_text(events)
    finally:
        pool.stop()


def test_worker_plan():
    assert plan_workers(0, None, 2) == (2, 1)  # one single-threaded worker per core
    assert plan_workers(0, "cpu", 1) == (1, 1)
    assert plan_workers(0, None, 32) == (8, 4)  # at most 8 copies of the model
    assert plan_workers(0, "cuda", 16) == (1, None)  # one batching worker on a GPU
    assert plan_workers(0, None, 16, gpu_present=True) == (1, None)  # no device given: CUDA it will be
    assert plan_workers(0, "cpu", 16, gpu_present=True) == (8, 2)
    assert plan_workers(3, None, 2) == (3, 1)
    with pytest.raises(ValueError):
        plan_workers(-1, None, 2)


def test_stats_of_the_workers_are_combined():
    def stats(**values):
        fields = dict(active_streams=1, queued_audio_s=0.5, lag_s=0.1, behind=False, partials_skipped=2,
                      finals_emitted=3, partials_emitted=4, audio_dropped_s=0.0)  # fmt: skip
        return EngineStats(**{**fields, **values})

    total = combined_stats([stats(window_cost_s=0.1, partial_interval_s=1.0),
                            stats(lag_s=2.5, behind=True, window_cost_s=0.3, partial_interval_s=0.5),
                            stats(window_cost_s=0.0)])  # fmt: skip
    assert (total.active_streams, total.finals_emitted, total.partials_skipped) == (3, 9, 6)
    assert total.queued_audio_s == pytest.approx(1.5)
    assert total.lag_s == 2.5 and total.behind
    assert total.window_cost_s == pytest.approx(0.2)  # the unmeasured worker doesn't count
    assert total.partial_interval_s == 1.0


def test_engine_workers_setting():
    parse = lambda argv, env={}: cli.load_config(cli.build_parser().parse_args(argv), env)  # noqa: E731
    assert parse([]).engine_workers == 0
    assert parse(["--engine-workers", "3"]).engine_workers == 3
    assert parse([], {"AUDIOSOCKET_ENGINE_WORKERS": "2"}).engine_workers == 2
    with pytest.raises(ValueError, match="needs the engine process"):
        cli.build_engine(parse(["--no-engine-process", "--engine-workers", "2"]))
