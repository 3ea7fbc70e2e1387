"""The AudioSocket wire protocol as a pure codec (no sockets).

Every message is a 3-byte header (kind byte, big-endian uint16 payload length)
followed by the payload.  Kinds and their rules follow Asterisk's
res_audiosocket: kinds 0x11-0x18 (higher slin rates) were added in Asterisk's
res_audiosocket in 2025; older Asterisk sends everything as 0x10.

Asterisk, reading from a server, accepts only audio kinds and hangup; any other
kind, or a zero-length audio payload, ends its AudioSocket session.  So the
server-side encoders here only produce those.
"""
from __future__ import annotations

import struct
import uuid as uuid_lib
from dataclasses import dataclass
from enum import IntEnum
from typing import Optional, Union

HEADER_BYTES = 3
MAX_PAYLOAD_BYTES = 0xFFFF
UUID_BYTES = 16
RAW_SAMPLE_RATE_HZ = 16000  # --raw: bare slin at this rate
_HEADER = struct.Struct(">BH")


class Kind(IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO_SLIN = 0x10
    AUDIO_SLIN12 = 0x11
    AUDIO_SLIN16 = 0x12
    AUDIO_SLIN24 = 0x13
    AUDIO_SLIN32 = 0x14
    AUDIO_SLIN44 = 0x15
    AUDIO_SLIN48 = 0x16
    AUDIO_SLIN96 = 0x17
    AUDIO_SLIN192 = 0x18
    ERROR = 0xFF


class ErrorCode(IntEnum):
    NONE = 0x00
    HANGUP = 0x01
    FRAME_FORWARDING = 0x02
    MEMORY = 0x04


AUDIO_KIND_RATES_HZ: dict[Kind, int] = {
    Kind.AUDIO_SLIN: 8000,
    Kind.AUDIO_SLIN12: 12000,
    Kind.AUDIO_SLIN16: 16000,
    Kind.AUDIO_SLIN24: 24000,
    Kind.AUDIO_SLIN32: 32000,
    Kind.AUDIO_SLIN44: 44100,
    Kind.AUDIO_SLIN48: 48000,
    Kind.AUDIO_SLIN96: 96000,
    Kind.AUDIO_SLIN192: 192000,
}
_AUDIO_RATE_KINDS: dict[int, Kind] = {hz: kind for kind, hz in AUDIO_KIND_RATES_HZ.items()}
_KNOWN_KINDS = frozenset(int(k) for k in Kind)


class ProtocolError(ValueError):
    """The peer broke the protocol; the connection cannot continue."""


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class UuidFrame:
    uuid: str  # canonical lower-case 8-4-4-4-12


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class Audio:
    pcm: bytes  # int16 little-endian mono
    sample_rate_hz: int


@dataclass(frozen=True)
class ErrorFrame:
    code: Optional[int]  # None when the payload was empty


Frame = Union[Hangup, UuidFrame, Dtmf, Audio, ErrorFrame]


def describe_error(code: Optional[int]) -> str:
    """An error message's code for a log line: "0x04 (memory)", "without a code"."""
    if code is None:
        return "without a code"
    try:
        return f"0x{code:02x} ({ErrorCode(code).name.lower().replace('_', ' ')})"
    except ValueError:
        return f"0x{code:02x}"


def audio_kind_for_rate(sample_rate_hz: int) -> Kind:
    try:
        return _AUDIO_RATE_KINDS[sample_rate_hz]
    except KeyError:
        raise ValueError(f"no AudioSocket audio kind for {sample_rate_hz} Hz") from None


# ---------------------------------------------------------------- encoding

def encode_frame(kind: int, payload: bytes = b"") -> bytes:
    """Raw framing of any kind/payload (used by clients and tests)."""
    if not 0 <= kind <= 0xFF:
        raise ValueError(f"kind {kind} out of range")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    return _HEADER.pack(kind, len(payload)) + payload


def encode_hangup() -> bytes:
    return encode_frame(Kind.HANGUP)


def encode_audio(pcm: bytes, sample_rate_hz: int = 8000) -> bytes:
    """An audio message a server may send to Asterisk (non-empty, whole samples)."""
    if not pcm:
        raise ValueError("Asterisk rejects zero-length audio payloads")
    if len(pcm) % 2:
        raise ValueError("slin audio needs an even number of bytes")
    return encode_frame(audio_kind_for_rate(sample_rate_hz), pcm)


def encode_uuid(call_uuid: str) -> bytes:
    return encode_frame(Kind.UUID, uuid_lib.UUID(call_uuid).bytes)


def encode_dtmf(digit: str) -> bytes:
    return encode_frame(Kind.DTMF, digit.encode("ascii"))


def encode(frame: Frame) -> bytes:
    """Encode a decoded frame back to bytes (inverse of FrameDecoder)."""
    if isinstance(frame, Hangup):
        return encode_hangup()
    if isinstance(frame, UuidFrame):
        return encode_uuid(frame.uuid)
    if isinstance(frame, Dtmf):
        return encode_dtmf(frame.digit)
    if isinstance(frame, Audio):
        return encode_audio(frame.pcm, frame.sample_rate_hz)
    payload = b"" if frame.code is None else bytes([frame.code])
    return encode_frame(Kind.ERROR, payload)


# ---------------------------------------------------------------- decoding

def _check_length(kind: int, length: int, max_payload_bytes: int) -> None:
    """Header-level checks, done before waiting for a payload that may never come."""
    if kind not in _KNOWN_KINDS:
        raise ProtocolError(f"unknown message kind 0x{kind:02x}")
    if kind == Kind.UUID and length != UUID_BYTES:
        raise ProtocolError(f"UUID message with {length} bytes, expected {UUID_BYTES}")
    if kind == Kind.DTMF and length != 1:
        raise ProtocolError(f"DTMF message with {length} bytes, expected 1")
    if kind in AUDIO_KIND_RATES_HZ:
        if length == 0:
            raise ProtocolError("zero-length audio message")
        if length % 2:
            raise ProtocolError(f"audio message with odd length {length}")
    if length > max_payload_bytes:
        raise ProtocolError(f"payload of {length} bytes exceeds the {max_payload_bytes}-byte limit")


def _parse(kind: int, payload: bytes) -> Frame:
    if kind == Kind.HANGUP:
        return Hangup()
    if kind == Kind.UUID:
        return UuidFrame(str(uuid_lib.UUID(bytes=payload)))
    if kind == Kind.DTMF:
        if not 0x21 <= payload[0] <= 0x7E:
            raise ProtocolError(f"DTMF digit 0x{payload[0]:02x} is not printable ASCII")
        return Dtmf(chr(payload[0]))
    if kind == Kind.ERROR:
        return ErrorFrame(payload[0] if payload else None)
    return Audio(payload, AUDIO_KIND_RATES_HZ[Kind(kind)])


class FrameDecoder:
    """Incremental decoder: feed() any byte chunks, get whole frames back.

    After a ProtocolError the decoder stays failed: the stream has lost framing.
    """

    def __init__(self, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self.max_payload_bytes = min(max_payload_bytes, MAX_PAYLOAD_BYTES)
        self._buffer = bytearray()
        self._failed: Optional[ProtocolError] = None

    def feed(self, data: bytes) -> list[Frame]:
        if self._failed:
            raise self._failed
        self._buffer += data
        try:
            return self._drain()
        except ProtocolError as error:
            self._failed = error
            raise

    def finish(self) -> None:
        """Call at end of stream: raises if it stopped inside a message."""
        if self._failed:
            raise self._failed
        if not self._buffer:
            return
        if len(self._buffer) < HEADER_BYTES:
            raise ProtocolError(f"connection closed inside a header ({len(self._buffer)} of 3 bytes)")
        _, length = _HEADER.unpack_from(self._buffer)
        got = len(self._buffer) - HEADER_BYTES
        raise ProtocolError(f"connection closed inside a payload ({got} of {length} bytes)")

    def _drain(self) -> list[Frame]:
        frames: list[Frame] = []
        offset = 0
        buffer = self._buffer
        while len(buffer) - offset >= HEADER_BYTES:
            kind, length = _HEADER.unpack_from(buffer, offset)
            _check_length(kind, length, self.max_payload_bytes)
            end = offset + HEADER_BYTES + length
            if end > len(buffer):
                break
            frames.append(_parse(kind, bytes(buffer[offset + HEADER_BYTES:end])))
            offset = end
        del buffer[:offset]
        return frames


class RawAudioDecoder:
    """'Raw mode': bare slin at a fixed rate with no framing at all.

    Same feed()/finish() interface as FrameDecoder; an odd trailing byte is
    held back until its partner arrives.
    """

    def __init__(self, sample_rate_hz: int = RAW_SAMPLE_RATE_HZ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self._carry = b""

    def feed(self, data: bytes) -> list[Frame]:
        data = self._carry + data
        whole = len(data) - len(data) % 2
        self._carry = data[whole:]
        return [Audio(data[:whole], self.sample_rate_hz)] if whole else []

    def finish(self) -> None:
        self._carry = b""  # half a sample at hang-up is not worth an error
