"""The asyncio TCP server: accepts AudioSocket connections, one CallSession each."""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional, Sequence

from ..registrations import Registrations
from .session import CallSession, SessionSettings, peer_label, send_hangup_and_close, set_nodelay
from ..outputs.sinks import Sink, SinkGroup

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8300


@dataclass(frozen=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_calls: int = 100
    shutdown_deadline_s: float = 30.0
    session: SessionSettings = field(default_factory=SessionSettings)


class BridgeServer:
    def __init__(self, engine, config: ServerConfig = ServerConfig(), sinks: Sequence[Sink] = (),
                 directory: Optional[Registrations] = None) -> None:
        self.engine = engine
        self.config = config
        self.sinks = SinkGroup(sinks)
        self.directory = directory if directory is not None else Registrations()
        self.refused_connections = 0
        self.connections = 0
        self.counters: Counter = Counter()  # every session's frame/byte/drop/error counts (metrics)
        self._server: Optional[asyncio.AbstractServer] = None
        self._sessions: dict[asyncio.Task, CallSession] = {}
        self._live_uuids: set[str] = set()

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); useful with port 0."""
        return self._server.sockets[0].getsockname()[:2]

    @property
    def active_calls(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connection, self.config.host,
                                                  self.config.port)
        host, port = self.address
        log.info("AudioSocket bridge listening on %s:%d%s", host, port,
                 " (raw slin mode)" if self.config.session.raw else "")

    async def close(self, deadline_s: Optional[float] = None) -> None:
        """Stop accepting, end every call, and flush/store them within the deadline."""
        deadline_s = self.config.shutdown_deadline_s if deadline_s is None else deadline_s
        if self._server:
            self._server.close()
        for session in list(self._sessions.values()):
            session.stop("shutdown")
        pending = set(self._sessions)
        if pending:
            log.info("shutdown: flushing %d call(s), deadline %g s", len(pending), deadline_s)
            _, late = await asyncio.wait(pending, timeout=deadline_s)
            for task in late:
                log.warning("shutdown: call %s not flushed in time", self._sessions[task].call.uuid)
                task.cancel()
        await self.sinks.close()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.active_calls >= self.config.max_calls:
            await self._refuse(reader, writer)
            return
        session = CallSession(reader, writer, engine=self.engine, sinks=self.sinks,
                              directory=self.directory, settings=self.config.session,
                              claim_uuid=self._claim_uuid, release_uuid=self._live_uuids.discard,
                              counters=self.counters)
        task = asyncio.current_task()
        self._sessions[task] = session
        try:
            await session.run()
        except Exception:
            log.exception("call %s from %s failed", session.call.uuid or "-", session.peer)
        finally:
            self._sessions.pop(task, None)

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.refused_connections += 1
        set_nodelay(writer)
        log.warning("refusing connection from %s: %d calls active (max-calls %d)",
                    peer_label(writer), self.active_calls, self.config.max_calls)
        await send_hangup_and_close(reader, writer, self.config.session.linger_s)

    def _claim_uuid(self, uuid: str) -> bool:
        if uuid in self._live_uuids:
            return False
        self._live_uuids.add(uuid)
        return True
