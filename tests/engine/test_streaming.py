"""The streaming engine on real weights (tiny.en) and real telephone prompts."""
from __future__ import annotations

import subprocess
import threading

import numpy as np
import pytest

from audiosocket_bridge.testing.fake_decoder import ManualClock
from audiosocket_bridge.testing.prompts import SOUNDS_DIR, prompt, read_slin
from whisper.evaluation import english_wer
from whisper.streaming import EngineOptions, StreamingEngine
from whisper.streaming.sim import play_realtime, silence, simulate
from whisper.streaming.types import StreamOptions

UTTERANCES = ["agent-pass", "auth-thankyou", "conf-onlyperson", "vm-goodbye", "pbx-invalid"]


def joined(names: list[str], pause_s: float = 1.2) -> tuple[bytes, list[tuple[float, float]]]:
    """8 kHz PCM of the prompts with pauses between, and each prompt's (start_s, end_s)."""
    pcm, spans, t = b"", [], 0.0
    for name in names:
        audio, rate = prompt(name).pcm, 8000
        spans.append((t, t + len(audio) / 2 / rate))
        pcm += audio + silence(pause_s, 8000)
        t = len(pcm) / 2 / 8000
    return pcm, spans


@pytest.fixture(scope="module")
def sim_engine(tiny_model):
    return StreamingEngine(tiny_model, EngineOptions())


def test_one_final_per_utterance_in_order_with_matching_text(sim_engine):
    pcm, spans = joined(UTTERANCES)
    events = simulate(sim_engine, pcm, 8000)
    finals = [e for e in events if e.is_final]
    assert [e.segment_index for e in finals] == list(range(len(UTTERANCES)))
    wer = english_wer([prompt(n).text for n in UTTERANCES], [e.text for e in finals])
    assert wer <= 0.15, [e.text for e in finals]
    for event, (start_s, end_s) in zip(finals, spans):
        assert start_s - 0.4 <= event.start_s <= start_s + 0.5
        assert end_s - 0.3 <= event.end_s <= end_s + 0.6


def test_partials_precede_their_final(sim_engine):
    pcm, _ = joined(["conf-onlyperson", "agent-pass"])
    events = simulate(sim_engine, pcm, 8000)
    for index in (0, 1):
        kinds = [e.kind for e in events if e.segment_index == index]
        assert kinds[-1] == "final" and kinds.count("final") == 1
        assert "partial" in kinds, f"no partial for segment {index}"
    seen_final = set()
    for event in events:
        assert event.segment_index not in seen_final, "an event came after its segment's final"
        if event.is_final:
            seen_final.add(event.segment_index)


def test_close_flushes_an_utterance_cut_off_mid_speech(sim_engine):
    audio = prompt("conf-onlyperson").pcm
    events = simulate(sim_engine, audio, 8000)  # no trailing silence at all
    finals = [e for e in events if e.is_final]
    assert len(finals) == 1
    assert "conference" in finals[0].text.lower()


def test_final_words_have_times_inside_the_utterance(sim_engine):
    pytest.importorskip("whisper.timing")
    pcm, spans = joined(["agent-pass"])
    final = [e for e in simulate(sim_engine, pcm, 8000) if e.is_final][0]
    assert final.words, "no word timestamps"
    starts = [w.start_s for w in final.words]
    assert starts == sorted(starts)
    assert all(final.start_s - 0.05 <= w.start_s <= w.end_s <= final.end_s + 0.05 for w in final.words)


def _tone(freqs_hz: list[float], seconds: float, rate: int = 8000, level: float = 0.3) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    signal = sum(np.sin(2 * np.pi * f * t) for f in freqs_hz) * level / len(freqs_hz)
    return (signal * 32767).astype("<i2").tobytes()


def test_silence_tones_and_dtmf_give_no_words(sim_engine):
    beep = read_slin(SOUNDS_DIR / "beep.wav")
    dtmf = b"".join(_tone([697, 1209], 0.15) + silence(0.1, 8000) for _ in range(8))
    dial_tone = _tone([350, 440], 3.0)
    busy = b"".join(_tone([480, 620], 0.5) + silence(0.5, 8000) for _ in range(4))
    pcm = silence(2.0, 8000) + beep + silence(1.0, 8000) + dtmf + dial_tone + busy + silence(2.0, 8000)
    events = simulate(sim_engine, pcm, 8000)
    assert [e.text for e in events if e.text] == []


def test_low_noise_gives_no_words(sim_engine):
    rng = np.random.default_rng(7)
    noise = (rng.normal(0, 0.003, 8000 * 5) * 32767).astype("<i2").tobytes()
    assert [e.text for e in simulate(sim_engine, noise, 8000) if e.text] == []


def test_sample_rate_change_mid_stream(sim_engine):
    first = prompt("agent-pass").pcm
    second = prompt("conf-onlyperson").pcm
    # Asterisk's slin16 for the second prompt: resample 8 -> 16 kHz with sox.
    wide = subprocess.run(
        ["sox", "-t", "raw", "-r", "8000", "-e", "signed", "-b", "16", "-c", "1", "-", "-t", "raw", "-r", "16000", "-"],
        input=second, capture_output=True, check=True,
    ).stdout
    events = []
    stream = sim_engine.open_stream("rates", StreamOptions(partials=False), events.append)
    stream.push(first + silence(1.2, 8000), 8000)
    stream.push(wide + silence(1.2, 16000), 16000)
    future = stream.close()
    while not future.done():
        sim_engine.step()
    finals = [e.text.lower() for e in events if e.is_final]
    assert len(finals) == 2 and "password" in finals[0] and "conference" in finals[1]
    assert events[1].start_s > events[0].end_s


def test_concurrent_streams_each_get_only_their_own_text(tiny_model):
    engine = StreamingEngine(tiny_model, EngineOptions())
    engine.start()
    names = {"s1": ["agent-pass"], "s2": ["conf-onlyperson"], "s3": ["vm-goodbye"], "s4": ["pbx-invalid"]}
    events = {sid: [] for sid in names}
    try:
        streams = {sid: engine.open_stream(sid, StreamOptions(), events[sid].append) for sid in names}
        threads = [
            threading.Thread(target=play_realtime, args=(streams[sid], joined(names[sid])[0], 8000)) for sid in names
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for stream in streams.values():
            stream.close().result(timeout=30)
    finally:
        engine.stop()
    for sid, prompt_names in names.items():
        finals = [e for e in events[sid] if e.is_final]
        assert all(e.stream_id == sid for e in events[sid])
        assert len(finals) == 1, [e.text for e in finals]
        assert english_wer([prompt(prompt_names[0]).text], [finals[0].text]) <= 0.25, (sid, finals[0].text)


def test_engine_stop_flushes_open_streams(tiny_model):
    engine = StreamingEngine(tiny_model, EngineOptions())
    engine.start()
    events = []
    stream = engine.open_stream("open", StreamOptions(partials=False), events.append)
    audio = prompt("agent-pass").pcm
    stream.push(audio, 8000)
    engine.stop(timeout_s=30)
    assert [e.kind for e in events] == ["final"]
    assert "password" in events[0].text.lower()


def test_overload_thins_partials_but_delivers_every_final(tiny_model):
    engine = StreamingEngine(tiny_model, EngineOptions())
    names = ["agent-pass", "conf-onlyperson", "vm-goodbye", "pbx-invalid", "auth-thankyou", "conf-getpin"]
    events = {name: [] for name in names}
    streams = {name: engine.open_stream(name, StreamOptions(partial_interval_s=0.2), events[name].append)
               for name in names}
    audio = {name: joined([name])[0] for name in names}
    for offset in range(0, max(len(a) for a in audio.values()), 1600):  # 100 ms steps, all streams at once
        for name, stream in streams.items():
            if audio[name][offset : offset + 1600]:
                stream.push(audio[name][offset : offset + 1600], 8000)
        engine.step()
    futures = [stream.close() for stream in streams.values()]
    while not all(f.done() for f in futures):
        engine.step()
    assert engine.stats().partials_skipped > 0
    for name in names:
        finals = [e for e in events[name] if e.is_final]
        assert len(finals) == 1 and finals[0].text, (name, finals)


def test_a_final_due_mid_batch_preempts_partials_and_goes_out_first(tiny_model, monkeypatch):
    clock = ManualClock()
    engine = StreamingEngine(tiny_model, EngineOptions(), clock=clock)
    events = []
    talking = engine.open_stream("talking", StreamOptions(partial_interval_s=0.2), events.append)
    pausing = engine.open_stream("pausing", StreamOptions(partials=False), events.append)
    pausing.push(prompt("agent-pass").pcm, 8000)
    engine.step()
    real_embed_audio, pushed = tiny_model.embed_audio, []

    def pause_while_encoding(mel, content_frames=None):  # the second caller stops talking meanwhile
        if not pushed:
            pushed.append(pausing.push(silence(0.6, 8000), 8000))
            clock.advance(1.0)  # the next poll is due at once
        return real_embed_audio(mel, content_frames=content_frames)

    monkeypatch.setattr(tiny_model, "embed_audio", pause_while_encoding)
    talking.push(prompt("conf-onlyperson").pcm[: 2 * 8000 * 2], 8000)  # 2 s of speech: a partial is due
    engine.step()
    assert pushed and not events, [e.text for e in events]  # the partial batch was abandoned
    assert engine.stats().partials_skipped >= 1
    engine.step()  # the final, with the talking caller's abandoned first partial riding along
    assert [(e.stream_id, e.kind) for e in events] == [("pausing", "final"), ("talking", "partial")]
    assert "password" in events[0].text.lower()


def test_a_final_cut_while_its_speculative_decode_runs_takes_that_result(tiny_model, monkeypatch):
    clock = ManualClock()
    engine = StreamingEngine(tiny_model, EngineOptions(), clock=clock)
    events, encoded = [], []
    stream = engine.open_stream("caller", StreamOptions(partials=False), events.append)
    stream.push(prompt("agent-pass").pcm + silence(0.3, 8000), 8000)  # paused: a speculative decode is due
    real_embed_audio = tiny_model.embed_audio

    def silence_goes_on_while_encoding(mel, content_frames=None):
        encoded.append(len(mel))
        if len(encoded) == 1:  # the endpointer closes the utterance while its speculative decode runs
            stream.push(silence(0.5, 8000), 8000)
            clock.advance(1.0)
        return real_embed_audio(mel, content_frames=content_frames)

    monkeypatch.setattr(tiny_model, "embed_audio", silence_goes_on_while_encoding)
    engine.step()
    assert encoded == [1], "the final was decoded a second time"
    assert [e.kind for e in events] == ["final"] and "password" in events[0].text.lower()


def test_unprocessed_audio_per_stream_is_bounded(tiny_model):
    engine = StreamingEngine(tiny_model, EngineOptions(max_pending_audio_s=5.0))
    stream = engine.open_stream("flood", StreamOptions(partials=False))
    for _ in range(20):
        stream.push(silence(1.0, 8000), 8000)
    assert stream.queued_audio_s == pytest.approx(5.0)  # bounded as it is pushed, not only when taken
    future = stream.close()
    while not future.done():
        engine.step()
    assert engine.stats().audio_dropped_s == pytest.approx(15.0, abs=0.1)
