"""A test AudioSocket client that behaves like Asterisk's AudioSocket.

What Asterisk (res_audiosocket + app_audiosocket / chan_audiosocket) does:
  * connects with TCP_NODELAY and writes the UUID message (kind 0x01, 16 raw
    bytes) first, in one write;
  * then one message per channel frame, each in one write: audio kind 0x10
    for 8 kHz slin (AudioSocket() app: 320 bytes per 20 ms), or kinds
    0x11..0x18 for slin12/16/24/32/44/48/96/192 from the channel driver
    (slin16: kind 0x12, 640 bytes per 20 ms); DTMF as kind 0x03 with 1 ASCII
    byte. Any other format is labelled 0x10 too (ast_audiosocket_send_frame's
    default): Dial(AudioSocket/...) without c(slin) sends 160-byte ulaw
    payloads as 0x10 (send_ulaw);
  * when the caller hangs up it just closes the socket (`end="close"`); a
    hangup message (00 00 00) is the protocol's other way (`end="hangup"`);
  * it reads what the server sends: audio is played, kind 0x00 (or a closed
    socket) ends the session gracefully, anything else (or a zero-length
    payload) is an error that also ends it; either way app_audiosocket
    returns and closes its socket, and so does this client;
  * app_audiosocket waits at most 2000 ms (MAX_WAIT_TIMEOUT_MSEC) for a frame
    from the channel or a message from the server; with neither it logs
    "Reached timeout after 2000 ms of no activity" and closes the socket.
    This client does the same (`no_activity_timeout_ms`, None to turn it
    off): a real channel sends a frame every 20 ms, so a test that waits
    without sending is one that real Asterisk would have cut off.

The framing here is written independently of audiosocket_bridge.audiosocket.protocol so
that the tests do not check the codec against itself.
"""
from __future__ import annotations

import asyncio
import socket
import struct
import uuid as uuid_lib
from typing import Optional

from whisper.streaming.pcm import FRAME_MS, frame_bytes

SLIN_KINDS = {8000: 0x10, 12000: 0x11, 16000: 0x12, 24000: 0x13, 32000: 0x14,
              44100: 0x15, 48000: 0x16, 96000: 0x17, 192000: 0x18}
NO_ACTIVITY_TIMEOUT_MS = 2000  # app_audiosocket.c MAX_WAIT_TIMEOUT_MSEC
ULAW_FRAME_BYTES = 160  # 20 ms of 8 kHz G.711, one byte per sample


def message(kind: int, payload: bytes = b"") -> bytes:
    return bytes([kind]) + struct.pack("!H", len(payload)) + payload


def ulaw_byte(sample: int) -> int:
    """G.711 mu-law code of one signed 16-bit sample (bias 132, clipped at 32635)."""
    sign = 0x80 if sample < 0 else 0x00
    magnitude = min(-sample if sample < 0 else sample, 32635) + 132
    exponent = max(magnitude.bit_length() - 8, 0)  # segment 0..7: where the top bit is
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ulaw_encode(pcm: bytes) -> bytes:
    """Signed 16-bit little-endian linear PCM -> one mu-law byte per sample."""
    count = len(pcm) // 2
    return bytes(ulaw_byte(s) for s in struct.unpack(f"<{count}h", pcm[:count * 2]))


class AudioSocketClient:
    def __init__(self, host: str, port: int, call_uuid: Optional[str] = None, *,
                 no_activity_timeout_ms: Optional[int] = NO_ACTIVITY_TIMEOUT_MS) -> None:
        self.host, self.port = host, port
        self.call_uuid = call_uuid or str(uuid_lib.uuid4())
        self.no_activity_timeout_ms = no_activity_timeout_ms
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None
        self.received_audio = bytearray()
        self.server_hangup = False  # the server sent a hangup message
        self.server_closed = False  # the server closed the socket
        self.server_error: Optional[str] = None  # what Asterisk would log as an error
        self.timed_out = False  # no activity either way for no_activity_timeout_ms
        self.writes = 0
        self._reader_task: Optional[asyncio.Task] = None
        self._watchdog_task: Optional[asyncio.Task] = None
        self._last_activity_s = 0.0

    async def connect(self, send_uuid: bool = True) -> "AudioSocketClient":
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._touch()
        self._reader_task = asyncio.create_task(self._read_server())
        if self.no_activity_timeout_ms is not None:
            self._watchdog_task = asyncio.create_task(self._watch_activity())
        if send_uuid:
            await self.send_bytes(message(0x01, uuid_lib.UUID(self.call_uuid).bytes))
        return self

    async def send_bytes(self, data: bytes) -> bool:
        """One write, like Asterisk's write(2) per message; False if the session is gone."""
        if self.writer.is_closing():
            return False
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError):
            return False
        self.writes += 1
        self._touch()
        return True

    async def send_audio(self, pcm: bytes, sample_rate_hz: int = 8000, *, realtime: bool = False,
                         frame_ms: int = FRAME_MS) -> int:
        """Send pcm as one message per frame_ms; returns the number of frames sent."""
        size = frame_bytes(sample_rate_hz, frame_ms)
        chunks = [pcm[offset:offset + size] for offset in range(0, len(pcm), size)]
        return await self._send_frames(SLIN_KINDS[sample_rate_hz],
                                       [c[:-1] if len(c) % 2 else c for c in chunks],
                                       realtime=realtime, frame_ms=frame_ms)

    async def send_ulaw(self, pcm: bytes, *, realtime: bool = False) -> int:
        """8 kHz slin pcm, mu-law encoded, as 160-byte payloads labelled 0x10 (what a ulaw
        channel sends through Dial(AudioSocket/...) without c(slin)); returns frames sent."""
        ulaw = ulaw_encode(pcm)
        chunks = [ulaw[offset:offset + ULAW_FRAME_BYTES]
                  for offset in range(0, len(ulaw), ULAW_FRAME_BYTES)]
        return await self._send_frames(SLIN_KINDS[8000], chunks, realtime=realtime, frame_ms=FRAME_MS)

    async def send_silence(self, seconds: float, sample_rate_hz: int = 8000, **kw) -> int:
        return await self.send_audio(bytes(int(seconds * sample_rate_hz) * 2), sample_rate_hz, **kw)

    async def send_dtmf(self, digit: str) -> bool:
        return await self.send_bytes(message(0x03, digit.encode("ascii")))

    async def finish(self, end: str = "close") -> None:
        """The caller hangs up: 'close' like Asterisk, or 'hangup' message then close."""
        if end == "hangup":
            await self.send_bytes(message(0x00))
        await self.close()

    async def close(self) -> None:
        if self._watchdog_task is not None and self._watchdog_task is not asyncio.current_task():
            self._watchdog_task.cancel()
        if self.writer and not self.writer.is_closing():
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    @property
    def ended(self) -> bool:
        return (self.server_hangup or self.server_closed or self.server_error is not None
                or self.timed_out)

    async def wait_server_end(self, timeout_s: float = 10.0) -> bool:
        """Wait until the server hangs up, closes or errs; True if it did in time (False too
        when this client gave up first on its no-activity timeout)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._reader_task), timeout_s)
        except asyncio.TimeoutError:
            return False
        return self.server_hangup or self.server_closed or self.server_error is not None

    async def _send_frames(self, kind: int, payloads: list[bytes], *, realtime: bool,
                           frame_ms: int) -> int:
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent = 0
        for payload in payloads:
            if self.ended:
                break
            if payload and not await self.send_bytes(message(kind, payload)):
                break
            sent += 1
            if realtime:
                await asyncio.sleep(max(0.0, started + sent * frame_ms / 1000 - loop.time()))
        return sent

    def _touch(self) -> None:
        self._last_activity_s = asyncio.get_running_loop().time()

    async def _watch_activity(self) -> None:
        loop = asyncio.get_running_loop()
        timeout_s = self.no_activity_timeout_ms / 1000
        while not self.ended:
            remaining_s = self._last_activity_s + timeout_s - loop.time()
            if remaining_s <= 0:
                self.timed_out = True  # "Reached timeout after 2000 ms of no activity"
                await self.close()
                return
            await asyncio.sleep(remaining_s)

    async def _read_server(self) -> None:
        try:
            while True:
                header = await self.reader.readexactly(3)
                self._touch()
                kind, length = header[0], struct.unpack("!H", header[1:])[0]
                if kind == 0x00:
                    self.server_hangup = True
                    break
                if kind not in SLIN_KINDS.values():
                    self.server_error = f"non-audio message kind 0x{kind:02x} from server"
                    break
                if length < 1:
                    self.server_error = "zero-length message from server"
                    break
                self.received_audio += await self.reader.readexactly(length)
                self._touch()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            if not self.timed_out and not (self.writer and self.writer.is_closing()):
                self.server_closed = True
        await self.close()  # app_audiosocket returns and close()s its socket
