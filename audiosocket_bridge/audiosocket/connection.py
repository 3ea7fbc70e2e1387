"""Socket handling of an AudioSocket connection that Asterisk depends on: who the peer is,
TCP_NODELAY, and closing after a hangup frame without making the kernel answer with RST."""
from __future__ import annotations

import asyncio
import socket

from .protocol import encode_hangup

READ_CHUNK_BYTES = 65536
LINGER_S = 2.0  # after our hangup frame: how long Asterisk's last frames are read until it closes
CLOSE_TIMEOUT_S = 2.0


def peer_label(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def set_nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def send_hangup_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                linger_s: float = LINGER_S) -> None:
    """A hangup message in one write (Asterisk reads the 3-byte header in one read), then a
    half-close, then Asterisk's last frames read and dropped until it closes (at most linger_s).

    Closing a socket with unread data makes the kernel answer with RST: Asterisk's next read or
    write fails, AudioSocket() returns -1 and the call is hung up instead of going on in the
    dialplan.
    """
    try:
        if not writer.is_closing():
            writer.write(encode_hangup())
            await asyncio.wait_for(writer.drain(), linger_s)
            if writer.can_write_eof():
                writer.write_eof()
            await asyncio.wait_for(_discard_until_eof(reader), linger_s)
    except (OSError, asyncio.TimeoutError):
        pass
    await close_writer(writer)


async def _discard_until_eof(reader: asyncio.StreamReader) -> None:
    while await reader.read(READ_CHUNK_BYTES):
        pass


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError):
        pass
