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

Access (access.py): only peers on the allow-list are answered (default: loopback and the AMI
hosts); with a shared secret configured, a request must also carry it, as `secret=...` or in
the channel variable AUDIOSOCKET_AGI_SECRET (set it in [globals]), else the connection is closed
without an answer. A register for a call that is already registered on
another channel is refused (AUDIOSOCKET_REGISTER = ERROR): a stranger cannot redirect a call.
Bounds: at most MAX_SESSIONS connections at once, a request of at most MAX_ENV_LINES lines of at
most MAX_LINE_BYTES each, read within `request_timeout_s`.

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

from ..access import AllowList, Gate, secret_matches
from .agi_protocol import (HANGUP_LINE, AgiRequest, AgiResponse, get_variable, parse_env_line,
                           parse_request, parse_response, set_variable)
from ..values import canonical_uuid
from ..outputs.presence import call_state, utc_now
from ..outputs.storage import StoredCall, joined_text
from ..redaction import channel_text
from ..registrations import CallOptions, Registration, Registrations
from .variables import answer_confidence, chunk_text, transcript_variables

log = logging.getLogger(__name__)

DEFAULT_AGI_HOST = "127.0.0.1"
DEFAULT_AGI_PORT = 4573
MAX_WAIT_S = 30.0
MAX_SESSIONS = 256
MAX_ENV_LINES = 256  # Asterisk sends ~24 agi_* lines and one per argument (at most 128)
MAX_LINE_BYTES = 8192
SECRET_PARAM = "secret"
SECRET_VARIABLE = "AUDIOSOCKET_AGI_SECRET"


class AgiRefused(Exception):
    """The request may not be answered (no or a wrong secret, too large)."""
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
        for _ in range(MAX_ENV_LINES):
            line = await self._read_line()
            if not line.strip():
                return parse_request(env)
            pair = parse_env_line(line)
            if pair:
                env[pair[0]] = pair[1]
        raise AgiRefused(f"request of more than {MAX_ENV_LINES} lines")

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
        try:
            raw = await self.reader.readline()
        except ValueError:  # the StreamReader's limit: a line over MAX_LINE_BYTES
            raise AgiRefused(f"line of more than {MAX_LINE_BYTES} bytes") from None
        if not raw:
            raise AgiHangup("FastAGI connection closed by Asterisk")
        return raw.decode("utf-8", errors="replace")


class FastAgiServer:
    def __init__(self, host: str, port: int, storage, live_calls, registrations: Registrations, *,
                 transcript_wait_s: float = 3.0, request_timeout_s: float = 10.0,
                 locate_server: Optional[Callable[[Optional[str], Optional[str]],
                                                  Optional[str]]] = None,
                 gate: Optional[Gate] = None, secret: str = "") -> None:
        self.host, self.port = host, port
        self.gate = gate or Gate("FastAGI", AllowList.default())
        self._secret = secret
        self.storage, self.live_calls, self.registrations = storage, live_calls, registrations
        self.transcript_wait_s = transcript_wait_s
        self.request_timeout_s = request_timeout_s
        # (request's source address, server= parameter) -> the AMI server it belongs to
        self.locate_server = locate_server or (lambda _peer, requested: requested)
        self._server: Optional[asyncio.base_events.Server] = None
        self._tasks: set[asyncio.Task] = set()
        self._scripts = {"transcript": self._transcript, "register": self._register}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port,
                                                  limit=MAX_LINE_BYTES)
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
        session = AgiSession(reader, writer)
        if not self.gate.admits(session.peer_host) or len(self._tasks) >= MAX_SESSIONS:
            if len(self._tasks) >= MAX_SESSIONS:
                self.gate.refuse(session.peer_host, f"over {MAX_SESSIONS} connections")
            writer.close()
            return
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._serve(session)
        finally:
            self._tasks.discard(task)
            writer.close()
            with suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, session: AgiSession) -> None:
        try:
            request = await asyncio.wait_for(session.read_request(), self.request_timeout_s)
            if not await self._carries_secret(session, request):
                self.gate.refuse(session.peer_host, "no or a wrong secret")
                return
            script = self._scripts.get(request.script)
            if script is None:
                log.warning("unknown FastAGI script %r", request.script)
                await session.set_variable("AGI_ERROR", f"unknown script {request.script}")
                return
            # the transcript script may wait up to MAX_WAIT_S for a live call's last final
            await asyncio.wait_for(script(session, request), self.request_timeout_s + MAX_WAIT_S)
        except AgiRefused as exc:
            self.gate.refuse(session.peer_host, str(exc))
        except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
            log.info("FastAGI session ended early: %s", exc or type(exc).__name__)
        except Exception:
            log.exception("FastAGI session failed")

    async def _carries_secret(self, session: AgiSession, request: AgiRequest) -> bool:
        """`secret=` in the request, else the channel's (or a global) AUDIOSOCKET_AGI_SECRET:
        set once in [globals], it keeps the secret out of every AGI URL Asterisk logs."""
        given = request.params.pop(SECRET_PARAM, None)
        if not self._secret:
            return True
        if given is None:
            given = await session.get_variable(SECRET_VARIABLE)
        return secret_matches(self._secret, given)

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
        "47 11") with TRANSCRIPT_CONFIDENCE of the last part. Storage holds the redacted text;
        the clear answer, which only the channel may get, comes from this bridge's memory of the
        call (LiveCalls) while it has it."""
        registration = self.registrations.get(uuid)
        grammar = registration.options.grammar if registration is not None else None
        grammar = grammar or stored_grammar
        if not grammar:
            return result
        parts = [(channel_text(f), f.avg_logprob) for f in self.live_calls.finals(uuid)
                 if getattr(f, "channel_text", None)]
        parts = [p for p in parts if p[0]] or [(s.text, s.avg_logprob) for s in segments if s.text]
        answer = parse_grammar(grammar).join([text for text, _ in parts])
        last = next((lp for _, lp in reversed(parts) if lp is not None), None)
        return replace(result, text=answer,
                       confidence=answer_confidence(last) if last is not None else 0.0)

    async def _registered_elsewhere(self, uuid: str, channel: Optional[str]) -> Optional[str]:
        """The channel a call is already registered on when it is not `channel`: only the
        channel that registered a call may change its registration (here or, through shared
        storage, on another bridge)."""
        found = self.registrations.get(uuid)
        if found is None:
            try:
                found = await asyncio.get_running_loop().run_in_executor(
                    None, self.storage.load_registration, uuid)
            except Exception:  # noqa: BLE001 - storage down: this bridge's own view decides
                found = None
        if found is None or not found.channel or found.channel == channel:
            return None
        return found.channel

    async def _register(self, session: AgiSession, request: AgiRequest) -> None:
        try:
            uuid = canonical_uuid(request.params.get("uuid", ""))
            options = CallOptions.from_fields(request.params)
            server = self.locate_server(session.peer_host, request.params.get("server") or None)
        except ValueError as exc:
            log.warning("register AGI on %s: bad parameters: %s", request.channel, exc)
            await session.set_variable("AUDIOSOCKET_REGISTER", "ERROR")
            return
        taken = await self._registered_elsewhere(uuid, request.channel)
        if taken is not None:
            log.warning("register AGI on %s refused: call %s is registered on %s", request.channel,
                        uuid, taken)
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
