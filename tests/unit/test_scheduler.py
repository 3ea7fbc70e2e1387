"""The streaming scheduler on a fake batch decoder and a hand-driven clock: no model, milliseconds."""
from __future__ import annotations

from typing import Dict, List, Tuple

import pytest

from audiosocket_bridge.testing.fake_decoder import SCRIPT, FakeDecoder, ManualClock, decoded, script_reply, speech
from whisper.streaming.capacity import Capacity
from whisper.streaming.engine import StreamingEngine
from whisper.streaming.options import EngineOptions
from whisper.streaming.scheduler import Scheduler
from whisper.streaming.sim import silence, simulate
from whisper.streaming.stream import Stream
from whisper.streaming.types import StreamOptions, TranscriptEvent

STEP_S = 0.1


class Rig:
    """A scheduler with streams whose events it records, each with the seconds of audio played by then."""

    def __init__(self, options: EngineOptions = EngineOptions(), batch_s: float = 0.0, reply=script_reply,
                 paced: bool = False):  # fmt: skip
        self.clock = ManualClock()
        self.decoder = FakeDecoder(self.clock, reply, batch_s)
        self.scheduler = Scheduler(self.decoder, options, self.clock, paced=paced)
        self.events: List[Tuple[float, TranscriptEvent]] = []
        self.sent_at_s: Dict[Tuple[str, int, str], float] = {}  # (stream, segment, kind) -> the clock's time
        self.played_s = 0.0

    def open(self, stream_id: str, **options) -> Stream:
        def on_event(event: TranscriptEvent) -> None:
            self.events.append((self.played_s, event))
            self.sent_at_s[(event.stream_id, event.segment_index, event.kind)] = self.clock()

        stream = Stream(stream_id, StreamOptions(**options), self.scheduler.options, on_event, wake=lambda: None)
        self.scheduler.add(stream)
        return stream

    def play(self, audio: Dict[Stream, bytes]) -> None:
        """100 ms of every stream's audio per tick, the clock keeping pace with it."""
        chunk = int(STEP_S * 8000) * 2
        for offset in range(0, max(len(pcm) for pcm in audio.values()), chunk):
            for stream, pcm in audio.items():
                if pcm[offset : offset + chunk]:
                    stream.push(pcm[offset : offset + chunk], 8000)
            self.clock.advance(STEP_S)
            self.played_s += STEP_S
            self.scheduler.tick()

    def close_all(self) -> None:
        futures = [stream.close() for stream in self.scheduler.streams()]
        for _ in range(100):
            if all(f.done() for f in futures):
                return
            self.scheduler.tick()
        raise AssertionError("streams did not close")

    def kinds(self) -> List[Tuple[str, str]]:
        return [(e.stream_id, e.kind) for _, e in self.events]

    def finals(self, stream_id: str) -> List[Tuple[float, TranscriptEvent]]:
        return [(t, e) for t, e in self.events if e.stream_id == stream_id and e.is_final]


def test_an_utterance_ends_after_half_a_second_of_silence_with_partials_first():
    rig = Rig()
    caller = rig.open("caller")
    rig.play({caller: silence(0.5, 8000) + speech(2.0) + silence(1.0, 8000)})
    assert rig.kinds()[-1] == ("caller", "final") and ("caller", "partial") in rig.kinds()
    assert [k for k in rig.kinds() if k[1] == "final"] == [("caller", "final")]
    (final_at_s, final), = rig.finals("caller")
    assert final.start_s == pytest.approx(0.5 - 0.3, abs=0.05)  # 300 ms of pre-roll
    assert final.end_s == pytest.approx(2.5 + 0.2, abs=0.05)  # 200 ms of post-roll
    assert 2.5 + 0.5 <= final_at_s <= 2.5 + 0.5 + STEP_S + 1e-6  # in the step its 0.5 s of silence completes
    assert final.text == " ".join(SCRIPT[: int((final.end_s - final.start_s) * 2)])
    assert final.words and final.words[0].start_s >= final.start_s


def test_only_first_partials_ride_with_finals_and_finals_never_wait_for_partials():
    rig = Rig(EngineOptions(first_partial_riders=2), batch_s=0.3)
    pausing, talking = rig.open("pausing"), rig.open("talking", partial_interval_s=0.2)
    rig.play({pausing: speech(1.5) + silence(2.0, 8000), talking: speech(3.5)})
    partial_batches = [i for i, batch in enumerate(rig.decoder.batches) if ("talking", "partial") in batch]
    for i in partial_batches[1:]:  # the talking caller's one utterance has one first partial
        assert {kind for _, kind in rig.decoder.batches[i]} == {"partial"}, rig.decoder.batches[i]
    (final_at_s, _), = rig.finals("pausing")
    assert 1.5 + 0.5 <= final_at_s <= 1.5 + 0.5 + STEP_S + 1e-6  # in the step its 0.5 s of silence completes
    partial_times = [t for t, e in rig.events if e.stream_id == "talking" and not e.is_final]
    assert partial_times, "the talking caller got no partial"


def test_a_final_due_while_partials_run_preempts_them_and_goes_first():
    rig = Rig(EngineOptions(first_partial_riders=0), batch_s=0.2)
    pausing, talking = rig.open("pausing", partials=False), rig.open("talking", partial_interval_s=0.2)
    rig.play({pausing: speech(1.5)})
    rig.decoder.during_next_batch = lambda: pausing.push(silence(0.6, 8000), 8000)  # the caller stops meanwhile
    talking.push(speech(2.0, seed=1), 8000)
    rig.scheduler.tick()
    assert rig.decoder.batches[-1] == [("talking", "partial")] and rig.events == []  # abandoned
    assert rig.scheduler.stats().partials_skipped == 1
    rig.scheduler.tick()
    assert rig.decoder.batches[-1] == [("pausing", "final")] and rig.kinds() == [("pausing", "final")]
    rig.scheduler.tick()  # with the final out, the talking caller's partial runs again
    assert rig.kinds() == [("pausing", "final"), ("talking", "partial")]


def test_a_final_that_is_ready_goes_out_in_the_middle_of_a_batch():
    rig = Rig(batch_s=0.2)
    pausing, talking = rig.open("pausing", partials=False), rig.open("talking")
    rig.play({pausing: speech(1.5) + silence(0.3, 8000)})
    assert rig.decoder.batches == [[("pausing", "speculative")]]
    rig.decoder.during_next_batch = lambda: pausing.push(silence(0.5, 8000), 8000)
    talking.push(speech(2.0, seed=1), 8000)
    rig.scheduler.tick()
    assert rig.kinds() == [("pausing", "final"), ("talking", "partial")]  # the final went out first, by a poll
    assert rig.scheduler.stats().partials_skipped == 0


def test_a_final_goes_out_when_its_own_row_ends_not_when_its_batch_does():
    rig = Rig(batch_s=1.0)
    rig.decoder.rows_end_apart = True
    first, second = rig.open("first", partials=False), rig.open("second", partials=False)
    rig.play({first: speech(2.0), second: speech(2.0, seed=1)})
    first.close(), second.close()  # both open utterances become finals in one batch
    started_s = rig.clock()
    rig.scheduler.tick()
    assert rig.decoder.batches[-1] == [("first", "final"), ("second", "final")]
    assert rig.sent_at_s[("first", 0, "final")] == pytest.approx(started_s + 0.5)  # half-way through the batch
    assert rig.sent_at_s[("second", 0, "final")] == pytest.approx(started_s + 1.0)
    assert [e.stream_id for _, e in rig.events] == ["first", "second"]  # each final once


def test_a_batch_of_finals_holds_at_most_max_batch_audio_s_of_encoded_audio():
    rig = Rig(EngineOptions(max_batch_audio_s=4.0))  # the fake decoder encodes each window's own audio
    callers = [rig.open(name, partials=False) for name in ("a", "b", "c")]
    rig.play({caller: speech(1.5, seed=i) for i, caller in enumerate(callers)})
    for caller in callers:
        caller.close()  # three finals of 1.5 s at once
    rig.scheduler.tick()
    rig.scheduler.tick()
    assert rig.decoder.batches[-2:] == [[("a", "final"), ("b", "final")], [("c", "final")]]
    lone = Rig(EngineOptions(max_batch_audio_s=1.0))  # a window longer than the limit still goes, alone
    caller = lone.open("long", partials=False)
    lone.play({caller: speech(3.0)})
    caller.close()
    lone.scheduler.tick()
    assert lone.decoder.batches[-1] == [("long", "final")] and lone.finals("long")


def test_a_speculative_decode_becomes_the_final_without_a_second_decode():
    rig = Rig()
    caller = rig.open("caller", partials=False)
    rig.play({caller: speech(1.5) + silence(0.3, 8000)})
    assert rig.decoder.batches == [[("caller", "speculative")]] and rig.events == []
    rig.play({caller: silence(0.5, 8000)})
    assert rig.decoder.batches == [[("caller", "speculative")]]
    assert rig.kinds() == [("caller", "final")]


def test_a_speculation_is_dropped_when_the_caller_speaks_again():
    rig = Rig()
    caller = rig.open("caller", partials=False)
    rig.play({caller: speech(1.5) + silence(0.3, 8000) + speech(1.0, seed=2) + silence(1.0, 8000)})
    assert rig.decoder.batches[0] == [("caller", "speculative")]
    (_, final), = rig.finals("caller")
    assert final.end_s - final.start_s > 2.5  # the whole utterance, not the speculated first part
    assert final.text == " ".join(SCRIPT[: int((final.end_s - final.start_s) * 2)])


def test_overload_thins_partials_stalest_stream_first():
    rig = Rig()
    streams = [rig.open(f"s{i}") for i in range(6)]

    def everyone_speaks(seconds: float, seed: int) -> List[str]:
        for i, stream in enumerate(streams):
            stream.push(speech(seconds, seed=seed + i), 8000)
        rig.scheduler.tick()
        return [sid for sid, _ in rig.decoder.batches[-1]]

    assert everyone_speaks(1.0, seed=0) == ["s0", "s1", "s2", "s3"]  # max_partial_batch
    assert rig.scheduler.stats().partials_skipped == 2
    assert everyone_speaks(0.8, seed=10) == ["s4", "s5", "s0", "s1"]  # the skipped ones first
    assert rig.scheduler.stats().partials_skipped == 4


def test_over_their_budget_partials_wait_but_finals_do_not():
    rig = Rig(batch_s=0.5, paced=True)  # a batch takes 0.5 s; partials may take 0.35 of the last 2 s
    rig.scheduler.capacity.window_s = 0.01  # measured fast: here only the budget holds partials back
    talking, pausing = rig.open("talking", partial_interval_s=0.2), rig.open("pausing", partials=False)
    ran = []
    for seed in range(3):
        talking.push(speech(1.0, seed=seed), 8000)
        ran.append(rig.scheduler.tick())
    assert ran == [True, True, False]  # after 1.0 s of partials (over 0.7 s) they wait
    pausing.push(speech(1.0, seed=9) + silence(0.8, 8000), 8000)
    assert rig.scheduler.tick()
    assert rig.decoder.batches[-1] == [("pausing", "final")] and rig.kinds()[-1] == ("pausing", "final")


def test_unreliable_finals_are_decoded_again_hotter():
    def unsure_until_hot(job, temperature):
        return decoded("press one for sales", avg_logprob=-1.5 if temperature < 0.5 else -0.3, temperature=temperature)

    rig = Rig(reply=unsure_until_hot)  # unsure at the pause: held open (hold_unsure), so 1.5 s of silence
    rig.play({rig.open("caller", partials=False): speech(1.5) + silence(1.5, 8000)})
    assert rig.decoder.temperatures == [0.0, 0.2, 0.5]
    assert [e.text for _, e in rig.finals("caller")] == ["press one for sales"]


def unsure_decodes(texts: Dict[float, Tuple[str, float]]):
    """A reply per temperature: (text, average log-probability), the model sure there is speech."""
    def reply(job, temperature):
        text, logprob = texts[temperature]
        return decoded(text, avg_logprob=logprob, no_speech_prob=0.05, temperature=temperature)

    return reply


def test_when_no_decode_is_reliable_the_likeliest_is_kept_where_speech_is_sure():
    rig = Rig(reply=unsure_decodes({0.0: ("sales", -1.1), 0.2: ("sails", -1.3),
                                    0.5: ("snails tails", -2.4)}))  # the last sample is worst  # fmt: skip
    rig.play({rig.open("caller", partials=False): speech(1.5) + silence(1.5, 8000)})
    assert rig.decoder.temperatures == [0.0, 0.2, 0.5]
    assert [e.text for _, e in rig.finals("caller")] == ["sales"]


def test_when_no_decode_is_reliable_one_that_does_not_loop_beats_a_likelier_loop():
    rig = Rig(reply=unsure_decodes({0.0: ("press one press one press one press one", -0.4),  # likeliest, a loop
                                    0.2: ("press one for sales", -1.2), 0.5: ("press on for snails", -1.6)}))
    rig.play({rig.open("caller", partials=False): speech(2.5) + silence(1.0, 8000)})
    assert rig.decoder.temperatures == [0.0, 0.2, 0.5]
    assert [e.text for _, e in rig.finals("caller")] == ["press one for sales"]


def test_silence_looking_finals_are_dropped_without_a_hotter_decode():
    rig = Rig(reply=lambda job, t: decoded("Thank you.", avg_logprob=-1.5, no_speech_prob=0.9, temperature=t))
    rig.play({rig.open("caller", partials=False): speech(1.5) + silence(1.0, 8000)})
    assert rig.decoder.temperatures == [0.0] and rig.events == []


def test_the_engine_is_behind_when_finals_wait():
    rig = Rig(batch_s=2.5)
    rig.play({rig.open("caller", partials=False): speech(1.5) + silence(1.0, 8000)})
    stats = rig.scheduler.stats()
    assert stats.behind and stats.lag_s == pytest.approx(2.5) and stats.finals_emitted == 1


def test_close_flushes_the_open_utterance_and_resolves_after_its_final():
    rig = Rig()
    caller = rig.open("caller", partials=False)
    rig.play({caller: speech(1.0)})
    future = caller.close()
    rig.scheduler.tick()
    assert future.done() and rig.kinds() == [("caller", "final")]
    assert rig.scheduler.streams() == []


def test_the_engine_takes_a_decoder_and_a_clock():
    clock = ManualClock()
    engine = StreamingEngine(decoder=FakeDecoder(clock), clock=clock)
    events = simulate(engine, speech(1.5) + silence(1.0, 8000), 8000)
    assert [e.kind for e in events][-1] == "final" and events[-1].text
    with pytest.raises(ValueError, match="English-only"):
        engine.open_stream("de", StreamOptions(language="de"))
    with pytest.raises(ValueError):
        StreamingEngine()


def test_capacity_is_measured_from_batches_and_spaces_the_partials_of_talking_streams():
    capacity = Capacity()
    assert not capacity.measured and capacity.partial_interval_s(4, 0.35, 0.8) == pytest.approx(0.8)
    capacity.record(4, 0.4)  # 0.1 s per window
    capacity.record(0, 1.0)  # nothing decoded: no measure
    assert capacity.window_s == pytest.approx(0.1)
    capacity.record(1, 0.2)
    assert capacity.window_s == pytest.approx(0.1 + 0.2 * 0.1)  # a moving mean, not the last batch
    assert capacity.partial_interval_s(7, 0.35, 0.8) == pytest.approx(7 * 0.12 / 0.35)
    assert capacity.partial_interval_s(1, 0.35, 0.8) == pytest.approx(0.8)  # never below the floor

    rig = Rig(batch_s=0.3, paced=True)
    talking = [rig.open(f"caller{i}", partial_interval_s=0.2) for i in range(3)]
    for stream in talking:
        stream.push(speech(2.0, seed=hash(stream.id) % 100), 8000)
    assert rig.scheduler.tick()  # one batch of partials: 0.3 s for 3 windows
    assert rig.scheduler.capacity.window_s == pytest.approx(0.1)
    for stream in talking:
        stream.push(speech(0.5, seed=7), 8000)  # 0.5 s more: due by their own 0.2 s interval
    assert not rig.scheduler.tick()  # but not by 3 x 0.1 s / 0.35 = 0.86 s (the budget has room)
    for stream in talking:
        stream.push(speech(0.5, seed=8), 8000)
    assert rig.scheduler.tick() and rig.decoder.batches[-1][0][1] == "partial"
    assert rig.scheduler.stats().partial_interval_s == pytest.approx(3 * 0.1 / 0.35)
    assert rig.scheduler.stats().window_cost_s == pytest.approx(0.1)


def test_an_utterances_first_partial_is_not_spaced_and_goes_before_later_partials():
    # Slow windows (6 talking streams x 0.5 s / 0.35 = 8.6 s apart): later partials are spaced, but a
    # new utterance's first partial comes once it has min_partial_audio_s, ahead of other streams.
    rig = Rig(EngineOptions(max_partial_batch=1), paced=True)
    rig.scheduler.capacity.window_s = 0.5
    rig.scheduler.capacity.smoothing = 0.0  # the fake decoder is instant: keep the measure
    talking = [rig.open(f"caller{i}", partial_interval_s=0.2) for i in range(5)]
    rig.play({stream: speech(1.2, seed=i) for i, stream in enumerate(talking)})
    assert sum(1 for _, e in rig.events if e.kind == "partial") == 5  # one first partial each, no second
    newcomer = rig.open("newcomer", partial_interval_s=0.2)
    rig.play({stream: speech(1.5, seed=10 + i) for i, stream in enumerate(talking + [newcomer])})
    first_partial_at_s = min(t for t, e in rig.events if e.stream_id == "newcomer" and e.kind == "partial")
    assert first_partial_at_s <= 1.2 + 0.6 + 2 * STEP_S  # right after its first 0.6 s of audio
    later = [e.stream_id for _, e in rig.events if e.kind == "partial"][5:]
    assert later[0] == "newcomer"  # before the others' second partials


def test_first_partials_ride_along_with_a_batch_of_finals_when_asked_to():
    rig = Rig(EngineOptions(first_partial_riders=1))
    ending, starting = rig.open("ending", partials=False), rig.open("starting")
    ending.push(speech(1.0, seed=1) + silence(0.8, 8000), 8000)  # ends within one drain: no speculation
    starting.push(speech(1.2, seed=2), 8000)
    assert rig.scheduler.tick()
    assert sorted(rig.decoder.batches[-1]) == [("ending", "final"), ("starting", "partial")]
    assert rig.kinds() == [("ending", "final"), ("starting", "partial")]  # the final goes out first


def test_an_abandoned_first_partial_rides_along_with_the_final_that_preempted_it():
    rig = Rig(batch_s=0.2)  # first_partial_riders=1 by default
    pausing, talking = rig.open("pausing", partials=False), rig.open("talking", partial_interval_s=0.2)
    rig.play({pausing: speech(1.5)})
    rig.decoder.during_next_batch = lambda: pausing.push(silence(0.6, 8000), 8000)
    talking.push(speech(2.0, seed=1), 8000)
    rig.scheduler.tick()
    assert rig.decoder.batches[-1] == [("talking", "partial")] and rig.events == []  # abandoned
    rig.scheduler.tick()
    assert rig.decoder.batches[-1] == [("pausing", "final"), ("talking", "partial")]
    assert rig.kinds() == [("pausing", "final"), ("talking", "partial")]


def test_the_rest_of_a_cut_utterance_is_decoded_with_the_cut_part_as_its_prompt():
    """As transcribe() conditions a window on the one before: the second half of speech cut at the
    length limit is decoded with the first half's final text as context; a new utterance is not."""
    from whisper.streaming.endpointing import EndpointOptions

    contexts: List[Tuple[int, str]] = []

    def reply(job, temperature):
        contexts.append((job.segment_index, job.context))
        return script_reply(job, temperature)

    endpoint = EndpointOptions(max_utterance_s=2.0, cut_search_s=1.0)
    rig = Rig(EngineOptions(endpoint=endpoint), reply=reply)
    caller = rig.open("caller", partials=False)
    rig.play({caller: speech(2.5) + silence(1.0, 8000) + speech(1.0, seed=1) + silence(1.0, 8000)})
    finals = [e for _, e in rig.finals("caller")]
    assert len(finals) == 3 and finals[0].end_s == finals[1].start_s  # cut, then a new utterance
    assert {context for segment, context in contexts if segment == 0} == {""}
    assert {context for segment, context in contexts if segment == 1} == {finals[0].text}
    assert {context for segment, context in contexts if segment == 2} == {""}


def test_the_rest_of_a_cut_number_is_decoded_without_the_cut_part_as_its_prompt():
    """Digits carry no language, and Whisper given them as its prompt copies them: the rest of
    "8 8 5 7 7 5 9" read on, "8 7 7", came out "8, 8, 8, 8, 8"."""
    from whisper.streaming.endpointing import EndpointOptions

    contexts: List[Tuple[int, str]] = []

    def reply(job, temperature):
        contexts.append((job.segment_index, job.context))
        return decoded("8 8 5 7 7 5 9" if job.segment_index == 0 else "8 7 7", temperature=temperature)

    endpoint = EndpointOptions(max_utterance_s=2.0, number_max_utterance_s=3.0, cut_search_s=1.0)
    rig = Rig(EngineOptions(endpoint=endpoint), reply=reply)
    caller = rig.open("caller", partials=False)
    rig.play({caller: speech(2.5) + silence(1.5, 8000)})
    finals = [e for _, e in rig.finals("caller")]
    assert [final.text for final in finals] == ["8 8 5 7 7 5 9", "8 7 7"]
    assert {context for _, context in contexts} == {""}


def test_a_streams_inbox_keeps_the_newest_audio_within_its_bound_while_nobody_takes_it():
    from whisper.streaming.inbox import Inbox

    inbox = Inbox("flood", max_s=2.0)
    for second in range(5):
        inbox.put(bytes([second]) * 16000, 8000)  # 1 s at 8 kHz, each second its own byte
    inbox.put(b"\x09" * 32000, 16000)  # 1 s at 16 kHz
    assert inbox.queued_s == pytest.approx(2.0)
    runs, dropped_s, closing = inbox.take()
    assert runs == [(8000, b"\x04" * 16000), (16000, b"\x09" * 32000)]  # the newest 2 s, runs by rate
    assert dropped_s == pytest.approx(4.0) and not closing
    assert inbox.take() == ([], 0.0, False)
