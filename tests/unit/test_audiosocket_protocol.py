"""The AudioSocket codec against the byte layout Asterisk's res_audiosocket uses."""
import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audiosocket_bridge.audiosocket import protocol as p
from audiosocket_bridge.testing.audiosocket_client import SLIN_KINDS, message

CALL = "40325ec2-5efd-4bd3-805f-53576e581d13"


def test_kind_numbers_match_res_audiosocket():
    assert (p.Kind.HANGUP, p.Kind.UUID, p.Kind.DTMF, p.Kind.AUDIO_SLIN, p.Kind.ERROR) == (0, 1, 3, 0x10, 0xFF)
    assert {p.AUDIO_KIND_RATES_HZ[k]: int(k) for k in p.AUDIO_KIND_RATES_HZ} == SLIN_KINDS
    assert p.Kind.AUDIO_SLIN16 == 0x12
    assert (p.ErrorCode.NONE, p.ErrorCode.HANGUP, p.ErrorCode.FRAME_FORWARDING, p.ErrorCode.MEMORY) == (0, 1, 2, 4)


def test_decodes_what_asterisk_sends():
    pcm = bytes(range(256)) + bytes(64)  # 320 bytes: 20 ms of 8 kHz slin
    wire = (message(0x01, uuid.UUID(CALL).bytes) + message(0x10, pcm) + message(0x03, b"#")
            + message(0x12, pcm * 2) + message(0xFF, b"\x02") + message(0x00))
    frames = p.FrameDecoder().feed(wire)
    assert frames == [p.UuidFrame(CALL), p.Audio(pcm, 8000), p.Dtmf("#"), p.Audio(pcm * 2, 16000),
                      p.ErrorFrame(p.ErrorCode.FRAME_FORWARDING), p.Hangup()]


def test_header_is_big_endian_length():
    assert p.encode_audio(b"\x01\x02" * 160) == b"\x10\x01\x40" + b"\x01\x02" * 160
    assert p.encode_hangup() == b"\x00\x00\x00"
    assert p.encode_uuid(CALL.upper()) == b"\x01\x00\x10" + uuid.UUID(CALL).bytes


def test_byte_by_byte_feeding():
    wire = message(0x01, uuid.UUID(CALL).bytes) + message(0x10, bytes(320))
    decoder = p.FrameDecoder()
    frames = [f for byte in wire for f in decoder.feed(bytes([byte]))]
    assert frames == [p.UuidFrame(CALL), p.Audio(bytes(320), 8000)]
    decoder.finish()


@pytest.mark.parametrize("wire, fragment", [
    (message(0x02, b"\x01\x35"), "unknown message kind 0x02"),
    (message(0x20, b""), "unknown message kind 0x20"),
    (message(0x10, b""), "zero-length audio"),
    (message(0x10, b"\x00" * 3), "odd length 3"),
    (message(0x01, b"\x00" * 15), "UUID message with 15 bytes"),
    (message(0x01, b""), "UUID message with 0 bytes"),
    (message(0x03, b""), "DTMF message with 0 bytes"),
    (message(0x03, b"12"), "DTMF message with 2 bytes"),
    (message(0x03, b"\x00"), "not printable"),
    (b"\x10\x80\x00", "exceeds the 1000-byte limit"),  # header alone is enough to refuse
])
def test_errors(wire, fragment):
    decoder = p.FrameDecoder(max_payload_bytes=1000)
    with pytest.raises(p.ProtocolError, match=fragment):
        decoder.feed(wire)
    with pytest.raises(p.ProtocolError):  # a failed decoder stays failed
        decoder.feed(message(0x00))


@pytest.mark.parametrize("wire, fragment", [
    (b"\x10\x01", "inside a header"),
    (b"\x10\x01\x40" + bytes(100), "inside a payload \\(100 of 320"),
])
def test_truncation_detected_at_finish(wire, fragment):
    decoder = p.FrameDecoder()
    assert decoder.feed(wire) == []
    with pytest.raises(p.ProtocolError, match=fragment):
        decoder.finish()


def test_server_encoder_only_makes_what_asterisk_accepts():
    with pytest.raises(ValueError):
        p.encode_audio(b"")  # Asterisk: "Invalid message length"
    with pytest.raises(ValueError):
        p.encode_audio(b"\x00")
    with pytest.raises(ValueError):
        p.encode_audio(b"\x00\x00", 11025)
    assert p.encode_audio(b"\x00\x00", 48000)[0] == 0x16


def test_raw_decoder_keeps_odd_byte():
    raw = p.RawAudioDecoder(16000)
    assert raw.feed(b"\x01\x02\x03") == [p.Audio(b"\x01\x02", 16000)]
    assert raw.feed(b"\x04") == [p.Audio(b"\x03\x04", 16000)]
    assert raw.feed(b"") == []


def test_canonical_uuid():
    from audiosocket_bridge.values import canonical_uuid

    assert canonical_uuid(" {" + CALL.upper() + "}") == CALL
    with pytest.raises(ValueError):
        canonical_uuid("not-a-uuid")


frames = st.one_of(
    st.just(p.Hangup()),
    st.uuids().map(lambda u: p.UuidFrame(str(u))),
    st.sampled_from("0123456789*#ABCD").map(p.Dtmf),
    st.builds(lambda n, rate, seed: p.Audio(bytes([seed]) * (2 * n), rate),
              st.integers(1, 400), st.sampled_from(sorted(p.AUDIO_KIND_RATES_HZ.values())),
              st.integers(0, 255)),
    st.one_of(st.none(), st.integers(0, 255)).map(p.ErrorFrame),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(frames, max_size=12), st.integers(1, 50))
def test_round_trip_in_any_chunking(frame_list, chunk_bytes):
    wire = b"".join(p.encode(f) for f in frame_list)
    decoder = p.FrameDecoder()
    decoded = []
    for offset in range(0, len(wire), chunk_bytes):
        decoded += decoder.feed(wire[offset:offset + chunk_bytes])
    decoder.finish()
    assert decoded == frame_list


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=10))
def test_arbitrary_bytes_never_crash(chunks):
    decoder = p.FrameDecoder(max_payload_bytes=4096)
    try:
        for chunk in chunks:
            for frame in decoder.feed(chunk):
                assert isinstance(frame, (p.Hangup, p.UuidFrame, p.Dtmf, p.Audio, p.ErrorFrame))
        decoder.finish()
    except p.ProtocolError:
        pass


@given(st.integers(0, 255), st.integers(0, 0xFFFF))
def test_header_checks_never_crash(kind, length):
    try:
        p.FrameDecoder().feed(struct.pack(">BH", kind, length))
    except p.ProtocolError:
        pass
