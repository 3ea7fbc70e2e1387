"""FastAGI server: transcripts into the dialplan after a call, options in before it.

Scripts (AGI cannot run while the channel is inside AudioSocket(); use it before/after):
  agi://127.0.0.1:4573/transcript?uuid=${ID}[&wait=3]
      Sets TRANSCRIPT (whole call so far, cut to one AGI line), TRANSCRIPT_FULL_1..N +
      TRANSCRIPT_PARTS (all of it, in chunks), TRANSCRIPT_SEGMENTS and, last,
      TRANSCRIPT_STATUS = OK | PENDING (still live after `wait` s) | NOTFOUND.
      Needs no AMI. SET VARIABLE also works on a hung-up channel (h / hangup handler).
      Bridges sharing one database answer for each other's calls (outputs/presence.py).
  agi://127.0.0.1:4573/register?uuid=${ID}&language=de&partials=0&mode=ivr&prompt=...
      Registers the channel (agi_channel, agi_uniqueid, CHANNEL(linkedid)) and per-call
      options in Registrations; sets AUDIOSOCKET_REGISTER = OK | ERROR. With several AMI
      servers, `server=NAME` says which PBX the call is on when the request's source address
      does not (two PBXs on one host); see asterisk/ami_router.py.
Parameters may also be passed as AGI arguments: AGI(agi://host/register,uuid=${ID},prompt=...).

Why not pyst2's AGI: asterisk.fastagi imports SocketServer (Python 2 only), AGI()
installs a SIGHUP handler (fails off the main thread), writes str to the socket and
does not escape quotes or newlines, and it is blocking. The codec in agi_protocol.py
is smaller than an adapter overriding all of that.
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Callable, Optional

from whisper.grammar import parse_grammar

from .agi_protocol import (HANGUP_LINE, AgiRequest, AgiResponse, get_variable, parse_env_line,
                           parse_request, parse_response, set_variable)
from ..audiosocket.protocol import canonical_uuid
from ..outputs.presence import call_state, utc_now
from ..outputs.storage import StoredCall, joined_text
from ..registrations import CallOptions, Registration, Registrations
from .variables import answer_confidence, chunk_text, transcript_variables

log = logging.getLogger(__name__)

DEFAULT_AGI_HOST = "127.0.0.1"
DEFAULT_AGI_PORT = 4573
MAX_WAIT_S = 30.0
STORAGE_POLL_S = 0.25  # how often a call live on another bridge is looked up while waiting


class AgiHangup(ConnectionError):
    """Asterisk closed the FastAGI connection."""


@dataclass(frozen=True)
class TranscriptResult:
    status: str  # OK | PENDING | NOTFOUND
    text: str = ""
    segments: int = 0
    confidence: Optional[float] = None  # grammar calls: of the last answer


def result_variables(result: TranscriptResult) -> list[tuple[str, str]]:
    """Every transcript variable (asterisk.variables), then TRANSCRIPT_STATUS."""
    parts = chunk_text(result.text)
    return transcript_variables(parts, result.segments, result.text, confidence=result.confidence) + [
        ("TRANSCRIPT_STATUS", result.status)]


class AgiSession:
    """One FastAGI connection, Asterisk side at the other end."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.hung_up = False
        peer = writer.get_extra_info("peername")
        self.peer_host: Optional[str] = peer[0] if peer else None  # the Asterisk that connected

    async def read_request(self) -> AgiRequest:
        env: dict[str, str] = {}
        while True:
            line = await self._read_line()
            if not line.strip():
                return parse_request(env)
            pair = parse_env_line(line)
            if pair:
                env[pair[0]] = pair[1]

    async def command(self, line: bytes) -> AgiResponse:
        self.writer.write(line)
        await self.writer.drain()
        while True:
            text = (await self._read_line()).strip()
            if text == HANGUP_LINE:  # the caller hung up; dead-channel commands still work
                self.hung_up = True
            elif text:
                return parse_response(text)

    async def set_variable(self, name: str, value: object) -> AgiResponse:
        return await self.command(set_variable(name, value))

    async def get_variable(self, name: str) -> Optional[str]:
        response = await self.command(get_variable(name))
        return response.data if response.ok and response.result == 1 else None

    async def _read_line(self) -> str:
        raw = await self.reader.readline()
        if not raw:
            raise AgiHangup("FastAGI connection closed by Asterisk")
        return raw.decode("utf-8", errors="replace")


class FastAgiServer:
    def __init__(self, host: str, port: int, storage, live_calls, registrations: Registrations, *,
                 transcript_wait_s: float = 3.0, request_timeout_s: float = 10.0,
                 locate_server: Optional[Callable[[Optional[str], Optional[str]],
                                                  Optional[str]]] = None) -> None:
        self.host, self.port = host, port
        self.storage, self.live_calls, self.registrations = storage, live_calls, registrations
        self.transcript_wait_s = transcript_wait_s
        self.request_timeout_s = request_timeout_s
        # (request's source address, server= parameter) -> the AMI server it belongs to
        self.locate_server = locate_server or (lambda _peer, requested: requested)
        self._server: Optional[asyncio.base_events.Server] = None
        self._tasks: set[asyncio.Task] = set()
        self._scripts = {"transcript": self._transcript, "register": self._register}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("FastAGI listening on %s:%d", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._serve(AgiSession(reader, writer))
        finally:
            self._tasks.discard(task)
            writer.close()
            with suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, session: AgiSession) -> None:
        try:
            request = await asyncio.wait_for(session.read_request(), self.request_timeout_s)
            script = self._scripts.get(request.script)
            if script is None:
                log.warning("unknown FastAGI script %r", request.script)
                await session.set_variable("AGI_ERROR", f"unknown script {request.script}")
                return
            await asyncio.wait_for(script(session, request),
                                   self.request_timeout_s + self.transcript_wait_s)
        except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
            log.info("FastAGI session ended early: %s", exc or type(exc).__name__)
        except Exception:
            log.exception("FastAGI session failed")

    # -- scripts
    async def _transcript(self, session: AgiSession, request: AgiRequest) -> None:
        try:
            uuid = canonical_uuid(request.params.get("uuid", ""))
            wait_s = min(MAX_WAIT_S, max(0.0, float(request.params.get("wait",
                                                                       self.transcript_wait_s))))
        except ValueError as exc:
            log.warning("transcript AGI on %s: bad parameters: %s", request.channel, exc)
            result = TranscriptResult("NOTFOUND")
        else:
            result = await self.lookup(uuid, wait_s)
        for name, value in result_variables(result):
            await session.set_variable(name, value)

    async def lookup(self, uuid: str, wait_s: float) -> TranscriptResult:
        """The call's transcript, waiting up to `wait_s` for a live call's last final: live here
        (LiveCalls) or, with several bridges on one database, live on another bridge."""
        here = self.live_calls.get(uuid) is not None
        if here and not await self.live_calls.wait_ended(uuid, wait_s):
            finals = self.live_calls.finals(uuid)
            # ended, its writes still waiting for the database: this bridge has all of it
            status = "OK" if self.live_calls.has_ended(uuid) else "PENDING"
            return TranscriptResult(status, joined_text(f.text for f in finals), len(finals))
        call = await self._stored_call(uuid, 0.0 if here else wait_s)
        if call is None:
            if here:  # ended, but storage has nothing (e.g. storage failing)
                finals = self.live_calls.finals(uuid)
                return TranscriptResult("OK", joined_text(f.text for f in finals), len(finals))
            return TranscriptResult("NOTFOUND")
        segments = await asyncio.get_running_loop().run_in_executor(
            None, self.storage.get_segments, uuid)
        status = "PENDING" if call_state(call, utc_now()) == "live" else "OK"
        result = TranscriptResult(status, joined_text(s.text for s in segments), len(segments))
        return self._grammar_answer(uuid, call.grammar, result, segments)

    async def _stored_call(self, uuid: str, wait_s: float) -> Optional[StoredCall]:
        """The stored call; while another bridge still transcribes it, polled until it ends or
        `wait_s` has passed."""
        loop = asyncio.get_running_loop()
        deadline_s = loop.time() + wait_s
        while True:
            call = await loop.run_in_executor(None, self.storage.get_call, uuid)
            remaining_s = deadline_s - loop.time()
            if call is None or remaining_s <= 0 or call_state(call, utc_now()) != "live":
                return call
            await asyncio.sleep(min(STORAGE_POLL_S, remaining_s))

    def _grammar_answer(self, uuid: str, stored_grammar: Optional[str], result: TranscriptResult,
                        segments) -> TranscriptResult:
        """A grammar call's TRANSCRIPT is its answer (the finals' parts joined: "4711", not
        "47 11") with TRANSCRIPT_CONFIDENCE of the last part."""
        registration = self.registrations.get(uuid)
        grammar = registration.options.grammar if registration is not None else None
        grammar = grammar or stored_grammar
        if not grammar:
            return result
        spoken = [s for s in segments if s.text]
        answer = parse_grammar(grammar).join([s.text for s in spoken])
        last = next((s for s in reversed(spoken) if s.avg_logprob is not None), None)
        return replace(result, text=answer, confidence=answer_confidence(last.avg_logprob) if last else 0.0)

    async def _register(self, session: AgiSession, request: AgiRequest) -> None:
        try:
            uuid = canonical_uuid(request.params.get("uuid", ""))
            options = CallOptions.from_fields(request.params)
            server = self.locate_server(session.peer_host, request.params.get("server") or None)
        except ValueError as exc:
            log.warning("register AGI on %s: bad parameters: %s", request.channel, exc)
            await session.set_variable("AUDIOSOCKET_REGISTER", "ERROR")
            return
        linkedid = await session.get_variable("CHANNEL(linkedid)")
        registration = Registration(uuid=uuid, channel=request.channel, uniqueid=request.uniqueid,
                                    linkedid=linkedid or None, options=options, server=server)
        self.registrations.register(registration)
        try:  # for a bridge sharing this database that gets the call (HAProxy in front)
            await asyncio.get_running_loop().run_in_executor(
                None, self.storage.save_registration, registration)
        except Exception:  # noqa: BLE001 - this bridge still has it
            log.warning("could not store the registration of %s for other bridges", uuid,
                        exc_info=True)
        log.info("registered call %s on %s via AGI (server %s, %s)", uuid, request.channel,
                 server, options)
        await session.set_variable("AUDIOSOCKET_REGISTER", "OK")
