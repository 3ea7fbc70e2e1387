"""The HTTP routes for people (outputs/http.py serves them): the caption stream, stored calls,
conversations, search, and the page (audiosocket_bridge/web/).

  GET /                                  the page (static; it asks for the token)
  GET /static/caption-stream.schema.json the stream's messages as a JSON schema
  GET /stream[?call=UUID][&since=...]    WebSocket, or Server-Sent Events (Accept: text/event-stream)
  GET /api/calls                         the latest stored calls, newest first
  GET /api/calls/{uuid}                  a stored call as JSON (segments, words, alerts)
  GET /api/calls/{uuid}/export.{fmt}     txt, srt, vtt or json
  GET /api/conversations/{id}            a conversation's legs interleaved by time (JSON)
  GET /api/conversations/{id}/export.{fmt}
  GET /api/search?q=WORDS                stored finals holding every word
Everything but the page needs HttpAccess (http_auth.py). Storage is read in threads.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from importlib import resources
from typing import Awaitable, Callable, Optional

from aiohttp import web

from ..values import canonical_uuid
from . import export, search
from .captions import (CaptionHub, Message, Replayed, TooManySubscribers, ended_message,
                       parse_since, stored_final_message, stored_started_message)
from .http_auth import HttpAccess

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10.0  # a subscriber that takes longer to accept one message is dropped
HEARTBEAT_S = 20.0
MAX_INCOMING_BYTES = 4096  # the stream is one-way; clients send nothing worth reading
SLOW_CLOSE_CODE = 4008
CONTEXT_FINALS = 20  # a live call's latest finals sent to a new subscriber that gave no since  # WebSocket close code: the subscriber fell behind (with the reason)
PAGE_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css",
              "caption-stream.schema.json": "application/schema+json"}

Send = Callable[[Message], Awaitable[None]]


def _json(value, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(value, ensure_ascii=False),
                        content_type="application/json")


def _refusal(access: HttpAccess) -> web.Response:
    if not access.enabled:
        return web.Response(status=403, text="transcripts over HTTP are off: start the bridge "
                                             "with --http-token-file (or --http-no-auth)\n")
    return web.Response(status=401, text="a bearer token is needed\n",
                        headers={"WWW-Authenticate": 'Bearer realm="audiosocket-bridge"'})


def _uuid(text: str) -> str:
    try:
        return canonical_uuid(text)
    except ValueError:
        raise web.HTTPBadRequest(text="not a call UUID\n") from None


class CaptionRoutes:
    def __init__(self, hub: CaptionHub, storage, access: HttpAccess) -> None:
        self.hub, self.storage, self.access = hub, storage, access

    def install(self, app: web.Application) -> None:
        @web.middleware
        async def guard(request: web.Request, handler):
            if _protected(request.path) and not self.access.allows(request.headers, request.query):
                return _refusal(self.access)
            return await handler(request)

        app.middlewares.append(guard)
        add = app.router.add_get
        add("/", self.page)
        add("/static/{name}", self.page)
        add("/stream", self.stream)
        add("/api/calls", self.calls)
        add("/api/calls/{uuid}", self.call)
        add("/api/calls/{uuid}/export.{fmt}", self.call_export)
        add("/api/conversations/{id}", self.conversation)
        add("/api/conversations/{id}/export.{fmt}", self.conversation_export)
        add("/api/search", self.search)

    # ---------------------------------------------------------------- page
    async def page(self, request: web.Request) -> web.Response:
        name = request.match_info.get("name", "index.html")
        if name not in PAGE_FILES:
            raise web.HTTPNotFound()
        body = resources.files("audiosocket_bridge.web").joinpath(name).read_bytes()
        return web.Response(body=body, content_type=PAGE_FILES[name],
                            headers={"Cache-Control": "no-cache",
                                     "Content-Security-Policy": "default-src 'self'; "
                                     "connect-src 'self' ws: wss:; frame-ancestors 'none'"})

    # ---------------------------------------------------------------- stored calls
    async def _read(self, function, *args):
        return await asyncio.to_thread(function, *args)

    async def calls(self, request: web.Request) -> web.Response:
        limit = _int(request.query.get("limit"), 50)
        found = await self._read(search.recent_calls, self.storage, limit)
        return _json([_call_summary(c, c.uuid in self.hub.calls) for c in found])

    async def call(self, request: web.Request) -> web.Response:
        text = await self._read(export.export_call, self.storage, _uuid(request.match_info["uuid"]),
                                "json")
        if text is None:
            raise web.HTTPNotFound()
        return web.Response(text=text, content_type="application/json")

    async def call_export(self, request: web.Request) -> web.Response:
        uuid, fmt = _uuid(request.match_info["uuid"]), _format(request)
        return _download(await self._read(export.export_call, self.storage, uuid, fmt), uuid, fmt)

    async def conversation(self, request: web.Request) -> web.Response:
        conversation = _conversation_id(request)
        text = await self._read(export.export_conversation, self.storage, conversation, "json")
        if text is None:
            raise web.HTTPNotFound()
        return web.Response(text=text, content_type="application/json")

    async def conversation_export(self, request: web.Request) -> web.Response:
        conversation, fmt = _conversation_id(request), _format(request)
        text = await self._read(export.export_conversation, self.storage, conversation, fmt)
        return _download(text, "conversation", fmt)

    async def search(self, request: web.Request) -> web.Response:
        hits = await self._read(search.search, self.storage, request.query.get("q", ""),
                                _int(request.query.get("limit"), 50))
        return _json([{"call": h.uuid, "started_at": h.started_at.isoformat(),
                       "channel": h.channel, "speaker": h.speaker, "segment": h.segment_index,
                       "start_s": h.start_s, "end_s": h.end_s, "text": h.text.strip()}
                      for h in hits])

    # ---------------------------------------------------------------- the stream
    async def stream(self, request: web.Request) -> web.StreamResponse:
        call = _uuid(request.query["call"]) if request.query.get("call") else None
        try:
            since = parse_since(request.query.get("since"), call)
        except ValueError as error:
            raise web.HTTPBadRequest(text=f"{error}\n") from None
        websocket = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=MAX_INCOMING_BYTES)
        if not websocket.can_prepare(request).ok and "text/event-stream" not in request.headers.get("Accept", ""):
            raise web.HTTPBadRequest(text="open /stream as a WebSocket or with Accept: "
                                          "text/event-stream\n")
        try:
            subscriber = self.hub.subscribe(call)
        except TooManySubscribers as error:
            raise web.HTTPServiceUnavailable(text=f"{error}\n") from None
        try:
            if websocket.can_prepare(request).ok:
                return await self._websocket(request, websocket, subscriber, since)
            return await self._events(request, subscriber, since)
        finally:
            self.hub.unsubscribe(subscriber)

    async def _websocket(self, request, websocket, subscriber, since) -> web.WebSocketResponse:
        await websocket.prepare(request)
        reader = asyncio.create_task(_ignore_incoming(websocket))
        sender = asyncio.create_task(self._pump(subscriber, since,
                                                lambda m: websocket.send_str(_text(m))))
        await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
        for task in (reader, sender):
            task.cancel()
        await asyncio.gather(reader, sender, return_exceptions=True)
        if subscriber.closed_reason is not None and not websocket.closed:
            code = 1001 if subscriber.closed_reason == "shutdown" else SLOW_CLOSE_CODE
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(code=code, message=subscriber.closed_reason
                                                       .encode()[:120]), SEND_TIMEOUT_S)
        return websocket

    async def _events(self, request, subscriber, since) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)

        async def send(message: Message) -> None:
            await response.write(f"event: {message['type']}\ndata: {_text(message)}\n\n".encode())

        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await self._pump(subscriber, since, send)
        return response

    async def _pump(self, subscriber, since: dict[str, int], send: Send) -> None:
        """The backlog (finals the client asked for again, and the live calls), then live
        messages; a final in both is sent once. Ends when the subscriber is closed."""
        replay = await self.backlog(subscriber.call, since)
        replayed = Replayed.of(replay)
        for message in replay:
            await asyncio.wait_for(send(message), SEND_TIMEOUT_S)
        while (message := await subscriber.next()) is not None:
            if not replayed.skip(message):
                await asyncio.wait_for(send(message), SEND_TIMEOUT_S)
        await asyncio.wait_for(send({"type": "bye", "reason": subscriber.closed_reason}),
                               SEND_TIMEOUT_S)

    async def backlog(self, call: Optional[str], since: dict[str, int]) -> list[Message]:
        uuids = [call] if call else list(dict.fromkeys([*self.hub.calls, *since]))
        messages: list[Message] = []
        for uuid in uuids:
            messages += await self._call_backlog(uuid, since.get(uuid))
        return messages

    async def _call_backlog(self, uuid: str, since: Optional[int]) -> list[Message]:
        live = self.hub.live(uuid)
        if live is not None:
            if since is None:
                recent = list(live.ring)[-CONTEXT_FINALS:]
            else:
                recent = self.hub.recent_finals(uuid, since)
            if recent is None:  # the ring no longer reaches back to `since`: storage has it all
                recent = [stored_final_message(uuid, s) for s in
                          await self._read(self.storage.get_segments, uuid) if s.index >= since]
            return [live.started, *recent]
        stored = await self._read(self.storage.get_call, uuid)
        if stored is None:
            return []
        segments = await self._read(self.storage.get_segments, uuid)
        messages = [stored_started_message(stored)]
        messages += [stored_final_message(uuid, s) for s in segments if s.index >= (since or 0)]
        if stored.ended_at is not None:
            messages.append(ended_message(uuid, stored.ended_at, stored.end_reason))
        return messages


def _text(message: Message) -> str:
    return json.dumps(message, ensure_ascii=False)


async def _ignore_incoming(websocket: web.WebSocketResponse) -> None:
    async for _ in websocket:
        pass


def _protected(path: str) -> bool:
    return path == "/stream" or path.startswith("/api/")


def _int(text: Optional[str], default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        raise web.HTTPBadRequest(text="limit: expected a number\n") from None


def _format(request: web.Request) -> str:
    fmt = request.match_info["fmt"]
    if fmt not in export.FORMATS:
        raise web.HTTPNotFound()
    return fmt


def _conversation_id(request: web.Request) -> str:
    conversation = request.match_info["id"]
    if not conversation or len(conversation) > 128:
        raise web.HTTPBadRequest(text="conversation id: 1 to 128 characters\n")
    return conversation


def _download(text: Optional[str], name: str, fmt: str) -> web.Response:
    if text is None:
        raise web.HTTPNotFound()
    types = {"json": "application/json", "vtt": "text/vtt", "srt": "application/x-subrip"}
    return web.Response(text=text, content_type=types.get(fmt, "text/plain"),
                        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'})


def _call_summary(call, live: bool) -> dict:
    return {"uuid": call.uuid, "channel": call.channel, "speaker": call.speaker,
            "conversation": call.conversation, "live": live,
            "started_at": call.started_at.isoformat() if call.started_at else None,
            "ended_at": call.ended_at.isoformat() if call.ended_at else None,
            "end_reason": call.end_reason}
