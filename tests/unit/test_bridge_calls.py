"""Call and AudioQueue: the per-connection policy, without sockets."""
import pytest

from audiosocket_bridge.audiosocket.call import Call, CallError, CallState, Outcome
from audiosocket_bridge.audiosocket.protocol import Audio, Dtmf, ErrorFrame, Hangup, UuidFrame
from whisper.streaming.pcm import FRAMES_PER_S, AudioChunk, AudioQueue, frame_bytes

CALL = "40325ec2-5efd-4bd3-805f-53576e581d13"
SLIN_20MS = bytes(frame_bytes(8000))


def started_call() -> Call:
    call = Call("127.0.0.1:5000")
    assert call.handle(UuidFrame(CALL)) is Outcome.STARTED
    return call


def test_uuid_first_then_audio_and_dtmf_timed_on_audio_clock():
    call = started_call()
    assert call.uuid == CALL and call.state is CallState.ACTIVE
    for _ in range(FRAMES_PER_S):
        assert call.handle(Audio(SLIN_20MS, 8000)) is Outcome.AUDIO
    call.handle(Dtmf("7"))
    assert call.dtmf == [(1.0, "7")]
    assert call.audio_s == pytest.approx(1.0)
    assert call.sample_rate_hz == 8000 and call.rate_changes == []


def test_rate_change_mid_call():
    call = started_call()
    call.handle(Audio(SLIN_20MS, 8000))
    call.handle(Audio(bytes(640), 16000))
    assert call.sample_rate_hz == 16000
    assert call.rate_changes == [(0.02, 16000)]
    assert [c.sample_rate_hz for c in call.queue.take_all()] == [8000, 16000]


@pytest.mark.parametrize("frame", [Audio(SLIN_20MS, 8000), Dtmf("1"), ErrorFrame(None)])
def test_anything_before_uuid_is_an_error(frame):
    with pytest.raises(CallError, match="before the UUID"):
        Call("peer").handle(frame)


def test_second_uuid_is_an_error():
    with pytest.raises(CallError, match="second UUID"):
        started_call().handle(UuidFrame(CALL))


def test_hangup_ends_and_first_reason_wins():
    call = started_call()
    assert call.handle(Hangup()) is Outcome.ENDED
    assert not call.end("shutdown")
    assert call.end_reason == "hangup"
    assert call.handle(Audio(SLIN_20MS, 8000)) is Outcome.NOTHING


def test_error_frame_is_recorded():
    call = started_call()
    assert call.handle(ErrorFrame(4)) is Outcome.PEER_ERROR
    assert call.peer_error_code == 4 and call.active


def test_raw_call_has_generated_uuid():
    call = Call.raw("peer")
    assert call.active and len(call.uuid) == 36


def test_audio_queue_drops_oldest_and_counts():
    queue = AudioQueue(max_s=0.1)
    for n in range(8):
        queue.put(AudioChunk(bytes([n]) * 320, 8000))  # 20 ms each
    assert queue.dropped_chunks == 3
    assert queue.dropped_s == pytest.approx(0.06)
    chunks = queue.take_all()
    assert [c.pcm[0] for c in chunks] == [3, 4, 5, 6, 7]
    assert len(queue) == 0 and queue.queued_s == 0


def test_audio_queue_reports_each_drop_once():
    queue = AudioQueue(max_s=0.05)
    for _ in range(3):
        queue.put(AudioChunk(SLIN_20MS, 8000))
    assert queue.new_drops() == (1, pytest.approx(0.02))
    assert queue.new_drops() == (0, 0.0)
    queue.put(AudioChunk(SLIN_20MS, 8000))
    assert queue.new_drops() == (1, pytest.approx(0.02))
    assert (queue.dropped_chunks, queue.dropped_s) == (2, pytest.approx(0.04))


def test_silence_for_a_media_gap_is_queued_on_the_audio_clock():
    call = started_call()
    call.fill_silence(0.5)
    assert call.audio_s == pytest.approx(0.5)
    (chunk,) = call.queue.take_all()
    assert chunk.pcm == bytes(8000) and chunk.sample_rate_hz == 8000
