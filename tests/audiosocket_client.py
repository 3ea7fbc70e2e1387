"""A test AudioSocket client that behaves like Asterisk's AudioSocket.

What Asterisk (res_audiosocket + app_audiosocket / chan_audiosocket) does:
  * connects with TCP_NODELAY and writes the UUID message (kind 0x01, 16 raw
    bytes) first, in one write;
  * then one message per channel frame, each in one write: audio kind 0x10
    for 8 kHz slin (AudioSocket() app: 320 bytes per 20 ms), or kinds
    0x11..0x18 for slin12/16/24/32/44/48/96/192 from the channel driver
    (slin16: kind 0x12, 640 bytes per 20 ms); DTMF as kind 0x03 with 1 ASCII
    byte;
  * when the caller hangs up it just closes the socket (`end="close"`); a
    hangup message (00 00 00) is the protocol's other way (`end="hangup"`);
  * it reads what the server sends: audio is played, kind 0x00 (or a closed
    socket) ends the session gracefully, anything else (or a zero-length
    payload) is an error that also ends it.

The framing here is written independently of audiosocket_bridge.protocol so
that the tests do not check the codec against itself.
"""
from __future__ import annotations

import asyncio
import socket
import struct
import uuid as uuid_lib
from typing import Optional

SLIN_KINDS = {8000: 0x10, 12000: 0x11, 16000: 0x12, 24000: 0x13, 32000: 0x14,
              44100: 0x15, 48000: 0x16, 96000: 0x17, 192000: 0x18}
FRAME_MS = 20


def message(kind: int, payload: bytes = b"") -> bytes:
    return bytes([kind]) + struct.pack("!H", len(payload)) + payload


class AudioSocketClient:
    def __init__(self, host: str, port: int, call_uuid: Optional[str] = None) -> None:
        self.host, self.port = host, port
        self.call_uuid = call_uuid or str(uuid_lib.uuid4())
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None
        self.received_audio = bytearray()
        self.server_hangup = False  # the server sent a hangup message
        self.server_closed = False  # the server closed the socket
        self.server_error: Optional[str] = None  # what Asterisk would log as an error
        self.writes = 0
        self._reader_task: Optional[asyncio.Task] = None

    async def connect(self, send_uuid: bool = True) -> "AudioSocketClient":
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader_task = asyncio.create_task(self._read_server())
        if send_uuid:
            await self.send_bytes(message(0x01, uuid_lib.UUID(self.call_uuid).bytes))
        return self

    async def send_bytes(self, data: bytes) -> bool:
        """One write, like Asterisk's write(2) per message; False if the server is gone."""
        if self.writer.is_closing():
            return False
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError):
            return False
        self.writes += 1
        return True

    async def send_audio(self, pcm: bytes, sample_rate_hz: int = 8000, *, realtime: bool = False,
                         frame_ms: int = FRAME_MS) -> int:
        """Send pcm as one message per frame_ms; returns the number of frames sent."""
        frame_bytes = sample_rate_hz * frame_ms // 1000 * 2
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent = 0
        for offset in range(0, len(pcm), frame_bytes):
            if self.ended:
                break
            chunk = pcm[offset:offset + frame_bytes]
            if len(chunk) % 2:
                chunk = chunk[:-1]
            if chunk and not await self.send_bytes(message(SLIN_KINDS[sample_rate_hz], chunk)):
                break
            sent += 1
            if realtime:
                await asyncio.sleep(max(0.0, started + sent * frame_ms / 1000 - loop.time()))
        return sent

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
        if self.writer and not self.writer.is_closing():
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    @property
    def ended(self) -> bool:
        return self.server_hangup or self.server_closed or self.server_error is not None

    async def wait_server_end(self, timeout_s: float = 10.0) -> bool:
        """Wait until the server hangs up or closes; True if it did in time."""
        try:
            await asyncio.wait_for(asyncio.shield(self._reader_task), timeout_s)
        except asyncio.TimeoutError:
            return False
        return True

    async def _read_server(self) -> None:
        try:
            while True:
                header = await self.reader.readexactly(3)
                kind, length = header[0], struct.unpack("!H", header[1:])[0]
                if kind == 0x00:
                    self.server_hangup = True
                    return
                if kind not in SLIN_KINDS.values():
                    self.server_error = f"non-audio message kind 0x{kind:02x} from server"
                    return
                if length < 1:
                    self.server_error = "zero-length message from server"
                    return
                self.received_audio += await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self.server_closed = True
