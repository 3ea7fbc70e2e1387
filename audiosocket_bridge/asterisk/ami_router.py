"""Several Asterisk servers on one bridge: each call's AMI output goes to the server that owns it.

A call belongs to the server whose dialplan announced it: the AmiSink that received its
`UserEvent: AudioSocketStart` names itself in the registration (Registration.server), and a
FastAGI `register` names the server it came from (see `server_for_agi`). Channel names repeat
across PBXs (every Asterisk has a Local/play-00000001;1), so output is never guessed: with one
server, everything goes to it; with several, a call whose server is not known gets no AMI output
(a warning says so; its transcript is stored and reachable by FastAGI as always).
"""
from __future__ import annotations

import logging
import socket
from collections import Counter
from typing import Optional, Sequence

from whisper.streaming.types import TranscriptEvent

from ..outputs.sinks import CallInfo
from ..ami_servers import unique_names
from ..registrations import Registrations
from .ami_sink import AmiConfig, AmiSink

log = logging.getLogger(__name__)


class AmiRouter:
    """A Sink over one AmiSink per server (`servers`: name -> sink, in configuration order)."""

    def __init__(self, configs: Sequence[AmiConfig], registrations: Registrations, *,
                 sink_factory=AmiSink) -> None:
        if not configs:
            raise ValueError("AmiRouter needs at least one AMI server")
        unique_names(config.name for config in configs)
        self.registrations = registrations
        self.servers = {config.name: sink_factory(config, registrations) for config in configs}
        # only several servers need telling apart by a FastAGI request's source address
        self._addresses = ({} if len(self.servers) == 1 else
                           {name: _addresses_of(sink.config.host) for name, sink in self.servers.items()})
        self._warned: set[str] = set()

    # -- which server
    def sink_for(self, call: CallInfo, *, warn: bool = True) -> Optional[AmiSink]:
        """The call's server's sink; None (with a warning, once per call) when it is not known."""
        found = self.registrations.get(call.uuid)
        server = (found.server if found is not None else None) or call.registration.server
        if server is None and len(self.servers) == 1:
            return next(iter(self.servers.values()))
        sink = self.servers.get(server) if server is not None else None
        if sink is None and warn:
            self._warn_unrouted(call.uuid, server)
        return sink

    def server_for_agi(self, peer_host: Optional[str], requested: Optional[str]) -> Optional[str]:
        """The server of a FastAGI request: the `server=` parameter if given (it must be a known
        name), else the one server whose AMI host has the request's source address, else None."""
        if requested:
            if requested not in self.servers:
                raise ValueError(f"unknown AMI server {requested!r} (known: "
                                 f"{', '.join(self.servers)})")
            return requested
        if len(self.servers) == 1:
            return next(iter(self.servers))
        matches = [name for name, addresses in self._addresses.items() if peer_host in addresses]
        return matches[0] if len(matches) == 1 else None

    def _warn_unrouted(self, uuid: str, server: Optional[str]) -> None:
        if uuid in self._warned:
            return
        self._warned.add(uuid)
        if len(self._warned) > 10000:
            self._warned.clear()
        why = (f"its server {server!r} is not one of this bridge's ({', '.join(self.servers)})"
               if server else "no AMI server announced it (UserEvent AudioSocketStart, or the "
                              "register FastAGI with server=NAME)")
        log.warning("call %s: no AMI output, %s", uuid, why)

    # -- Sink
    async def call_started(self, call: CallInfo) -> None:
        sink = self.sink_for(call, warn=False)  # the registration may still be on its way
        if sink is not None:
            await sink.call_started(call)

    async def transcript(self, call: CallInfo, event: TranscriptEvent) -> None:
        sink = self.sink_for(call)
        if sink is not None:
            await sink.transcript(call, event)

    async def alert(self, call: CallInfo, alert) -> None:
        sink = self.sink_for(call)
        if sink is not None:
            await sink.alert(call, alert)

    async def call_ended(self, call: CallInfo) -> None:
        sink = self.sink_for(call)
        if sink is not None:
            await sink.call_ended(call)

    async def settle(self, call: CallInfo, timeout_s: float) -> None:
        sink = self.sink_for(call)
        if sink is not None:
            await sink.settle(call, timeout_s)

    async def close(self) -> None:
        for sink in self.servers.values():
            await sink.close()

    # -- lifecycle and state, for the bridge, the metrics and the benchmarks
    def start(self) -> None:
        for sink in self.servers.values():
            sink.start()

    def wait_connected(self, timeout_s: float) -> bool:
        return all(sink.wait_connected(timeout_s) for sink in self.servers.values())

    @property
    def pending(self) -> int:
        return sum(sink.pending for sink in self.servers.values())

    @property
    def counters(self) -> Counter:
        return sum((sink.counters for sink in self.servers.values()), Counter())

    @property
    def state(self) -> str:
        """'connected' when every server is, else the first other state found."""
        states = [sink.state for sink in self.servers.values()]
        return next((state for state in states if state != "connected"), "connected")


def _addresses_of(host: str) -> frozenset[str]:
    """The IP addresses `host` resolves to now (a FastAGI request comes from one of them)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        log.warning("AMI host %s does not resolve: FastAGI requests cannot be matched to it", host)
        return frozenset({host})
    return frozenset({host, *(info[4][0] for info in infos)})
