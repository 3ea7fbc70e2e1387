"""The asyncio TCP server: accepts AudioSocket connections, one Session each, up to max_calls."""
from __future__ import annotations

import asyncio
import functools
import logging
from typing import Optional

from whisper.streaming.interface import Engine

from ..access import AllowList, Gate
from ..outputs.sinks import SinkGroup
from ..registrations import Registrations
from .connection import peer_label, send_hangup_and_close, set_nodelay
from .live_uuids import LiveUuids
from .session import Session
from .settings import SessionSettings
from .stats import ConnectionStats
from .transcription import Transcription

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8300


class BridgeServer:
    """Calls hold a slot (`max_calls`) from their UUID on; a connection that has not sent one is
    a handshake, bounded apart (`max_handshakes`, each at most `handshake_timeout_s`), so that
    sockets that never send a UUID cannot keep real calls out."""

    def __init__(self, engine: Optional[Engine], sinks: SinkGroup, registrations: Registrations,
                 settings: SessionSettings = SessionSettings(), *, host: str = DEFAULT_HOST,
                 port: int = DEFAULT_PORT, max_calls: int = 100, gate: Optional[Gate] = None,
                 admit=None) -> None:
        """`admit(uuid)` (async) says why a call may not start, or None (Transcription)."""
        self.settings = settings
        self.host, self.port, self.max_calls = host, port, max_calls
        self.max_handshakes = max(16, max_calls)
        self.gate = gate or Gate("AudioSocket", AllowList.default())
        self.stats = ConnectionStats()
        extra = {"admit": admit} if admit is not None else {}
        self._new_transcription = functools.partial(Transcription, engine=engine, sinks=sinks,
                                                    registrations=registrations, settings=settings,
                                                    **extra)
        self._live_uuids = LiveUuids()
        self._server: Optional[asyncio.AbstractServer] = None
        self._address: Optional[tuple[str, int]] = None
        self._sessions: dict[asyncio.Task, Session] = {}

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); useful with port 0 (kept once the server stops accepting)."""
        if self._address is None:
            self._address = self._server.sockets[0].getsockname()[:2]
        return self._address

    @property
    def active_calls(self) -> int:
        """Calls in progress: connections that have sent their UUID (raw mode: every one)."""
        return sum(1 for session in self._sessions.values() if session.started)

    @property
    def handshakes(self) -> int:
        return len(self._sessions) - self.active_calls

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connection, self.host, self.port)
        self._address = None
        host, port = self.address
        log.info("AudioSocket bridge listening on %s:%d%s", host, port,
                 " (raw slin mode)" if self.settings.raw else "")

    def stop_accepting(self) -> None:
        """New connections are refused by the kernel from now on; calls in progress go on."""
        if self._server:
            self._server.close()

    async def wait_idle(self) -> None:
        """Returns once no call is in progress."""
        while self._sessions:
            await asyncio.wait(set(self._sessions))

    async def close(self, deadline_s: float) -> None:
        """Stop accepting, end every call, and let each flush its last words within the deadline."""
        self.stop_accepting()
        for session in list(self._sessions.values()):
            session.stop("shutdown")
        pending = set(self._sessions)
        if pending:
            log.info("shutdown: flushing %d call(s), deadline %g s", len(pending), deadline_s)
            _, late = await asyncio.wait(pending, timeout=deadline_s)
            for task in late:
                log.warning("shutdown: call %s not flushed in time", self._sessions[task].call.uuid)
                task.cancel()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        peer = writer.get_extra_info("peername")
        if not self.gate.admits(peer[0] if isinstance(peer, tuple) else None):
            self.stats.connections_refused += 1
            await send_hangup_and_close(reader, writer)  # no RST: a misplaced PBX's call goes on
            return
        if self.active_calls >= self.max_calls or self.handshakes >= self.max_handshakes:
            await self._refuse(reader, writer)
            return
        session = Session(reader, writer, settings=self.settings, stats=self.stats,
                          live_uuids=self._live_uuids, new_transcription=self._new_transcription,
                          may_start=self._may_start)
        task = asyncio.current_task()
        self._sessions[task] = session
        try:
            await session.run()
        except Exception:
            log.exception("call %s from %s failed", session.call.uuid or "-", session.peer)
        finally:
            self._sessions.pop(task, None)

    def _may_start(self) -> Optional[str]:
        """Checked when a connection's UUID arrives (it is not counted yet)."""
        if self.active_calls >= self.max_calls:
            self.stats.connections_refused += 1
            return f"refusing connection: {self.active_calls} calls active (max-calls {self.max_calls})"
        return None

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections_refused += 1
        set_nodelay(writer)
        log.warning("refusing connection from %s: %d calls active (max-calls %d), %d handshakes "
                    "(at most %d)", peer_label(writer), self.active_calls, self.max_calls,
                    self.handshakes, self.max_handshakes)
        await send_hangup_and_close(reader, writer)
