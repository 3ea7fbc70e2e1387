"""The session's pure rules, without sockets: the IVR policy, silence for media gaps, UUID
claims, the connection counters and slin arithmetic."""
import pytest

from whisper.streaming import pcm
from audiosocket_bridge.audiosocket.ivr import (DEFAULT_NO_INPUT_TIMEOUT_S, IVR_FINAL, IVR_NO_INPUT,
                                                IvrPolicy)
from audiosocket_bridge.audiosocket.live_uuids import LiveUuids
from audiosocket_bridge.audiosocket.media_gaps import GapFiller
from audiosocket_bridge.audiosocket.protocol import (Audio, Dtmf, ErrorFrame, Hangup, UuidFrame,
                                                     describe_error)
from audiosocket_bridge.audiosocket.stats import ConnectionStats
from audiosocket_bridge.registrations import CallOptions


def test_a_transcribed_call_has_no_ivr_policy():
    assert IvrPolicy.for_options(CallOptions()) is None
    assert IvrPolicy.for_options(CallOptions(mode="transcribe", no_input_timeout_s=3)) is None


def test_ivr_ends_at_the_first_final_with_words_and_only_once():
    policy = IvrPolicy.for_options(CallOptions(mode="ivr"))
    assert policy.after_final("") is None and policy.after_final("   ") is None
    assert policy.after_final(" Sales, please.") == IVR_FINAL
    assert policy.after_final("And support.") is None
    assert policy.after_no_input_timeout() is None  # the caller was heard


def test_ivr_no_input_timeout_unless_the_caller_spoke():
    policy = IvrPolicy.for_options(CallOptions(mode="ivr", no_input_timeout_s=6))
    assert policy.no_input_timeout_s == 6
    policy.after_final(" ")  # an empty final is not input
    assert policy.after_no_input_timeout() == IVR_NO_INPUT


@pytest.mark.parametrize("given", [None, 0])
def test_ivr_default_no_input_timeout(given):
    policy = IvrPolicy.for_options(CallOptions(mode="ivr", no_input_timeout_s=given))
    assert policy.no_input_timeout_s == DEFAULT_NO_INPUT_TIMEOUT_S == 10.0


def test_no_silence_is_owed_before_audio_or_within_the_grace():
    gaps = GapFiller(after_s=0.3, max_s=5.0)
    assert gaps.silence_due_s(100.0) == 0.0  # nothing heard yet
    gaps.heard_audio(100.0)
    assert gaps.silence_due_s(100.29) == 0.0


def test_a_gap_is_owed_in_real_time_up_to_the_bound():
    gaps = GapFiller(after_s=0.3, max_s=1.0)
    gaps.heard_audio(10.0)
    assert gaps.silence_due_s(10.5) == pytest.approx(0.5)
    assert gaps.silence_due_s(10.51) == 0.0  # less than one 20 ms frame more
    assert gaps.silence_due_s(10.75) == pytest.approx(0.25)
    assert gaps.silence_due_s(13.0) == pytest.approx(0.25)  # 1.0 s per gap at most
    assert gaps.silence_due_s(20.0) == 0.0


def test_audio_starts_a_new_gap():
    gaps = GapFiller(after_s=0.3, max_s=1.0)
    gaps.heard_audio(0.0)
    assert gaps.silence_due_s(5.0) == pytest.approx(1.0)
    gaps.heard_audio(5.0)
    assert gaps.silence_due_s(5.4) == pytest.approx(0.4)


def test_a_uuid_is_live_in_one_call_at_a_time():
    uuids = LiveUuids()
    assert uuids.claim("a") and not uuids.claim("a") and uuids.claim("b")
    uuids.release("a")
    uuids.release("never-claimed")
    assert uuids.claim("a")


def test_connection_stats_count_frames_by_kind_and_drops():
    stats = ConnectionStats()
    for frame in (UuidFrame("x"), Audio(b"\0\0", 8000), Audio(b"\0\0", 8000), Dtmf("1"),
                  ErrorFrame(None), Hangup()):
        stats.count_frame(frame)
    assert stats.frames_received == {"uuidframe": 1, "audio": 2, "dtmf": 1, "errorframe": 1,
                                     "hangup": 1}
    stats.count_drops(3, 0.06)
    stats.count_drops(1, 0.02)
    assert (stats.audio_dropped_chunks, stats.audio_dropped_s) == (4, pytest.approx(0.08))


def test_error_codes_are_named_for_the_log():
    assert describe_error(0x04) == "0x04 (memory)"
    assert describe_error(0x02) == "0x02 (frame forwarding)"
    assert describe_error(0x7F) == "0x7f"
    assert describe_error(None) == "without a code"


def test_slin_arithmetic():
    assert pcm.frame_bytes(8000) == 320 and pcm.frame_bytes(16000) == 640
    assert pcm.frame_bytes(44100) == 1764
    assert pcm.FRAMES_PER_S == 50
    assert pcm.duration_s(16000, 8000) == 1.0
    assert pcm.silence(0.02, 8000) == bytes(320)
