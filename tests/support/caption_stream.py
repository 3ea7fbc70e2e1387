"""A caption stream client for tests: the bridge's /stream over a real WebSocket (aiohttp's
client), collecting the JSON messages it receives with their arrival times."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Callable, Optional
from urllib.parse import urlencode

import aiohttp

TOKEN = "captions-test-token-0123456789"


class StreamClient:
    def __init__(self, address, *, token: Optional[str] = TOKEN, call: Optional[str] = None,
                 since: Optional[str] = None, header: bool = True) -> None:
        query = {k: v for k, v in (("call", call), ("since", since)) if v is not None}
        if token and not header:
            query["token"] = token
        self.url = f"http://{address[0]}:{address[1]}/stream" + (f"?{urlencode(query)}" if query else "")
        self.headers = {"Authorization": f"Bearer {token}"} if token and header else {}
        self.messages: list[dict] = []
        self.arrived_at: list[float] = []  # time.time() of each message
        self.close_code: Optional[int] = None
        self._session: Optional[aiohttp.ClientSession] = None
        self._socket = None
        self._reader: Optional[asyncio.Task] = None
        self._changed = asyncio.Event()

    async def open(self) -> "StreamClient":
        self._session = aiohttp.ClientSession()
        self._socket = await self._session.ws_connect(self.url, headers=self.headers)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for frame in self._socket:
            if frame.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(frame.data))
                self.arrived_at.append(time.time())
                self._changed.set()
        self.close_code = self._socket.close_code
        self._changed.set()

    async def wait_for(self, predicate: Callable[[list[dict]], bool], timeout_s: float = 10.0) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate(self.messages):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or (self._reader is not None and self._reader.done()):
                return predicate(self.messages)
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        return True

    def of(self, kind: str, call: Optional[str] = None) -> list[dict]:
        return [m for m in self.messages if m["type"] == kind and (call is None or m["call"] == call)]

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._session is not None:
            await self._session.close()


async def http_status(address, path: str, token: Optional[str] = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://{address[0]}:{address[1]}{path}", headers=headers) as r:
            return r.status, await r.text()


def finals_of(messages: list[dict], call: str) -> list[int]:
    return [m["segment"] for m in messages if m["type"] == "final" and m["call"] == call]


def assert_valid(messages: list[dict]) -> None:
    """Every message as the shipped JSON schema (audiosocket_bridge/web) describes it."""
    from importlib import resources

    import jsonschema

    schema = json.loads(resources.files("audiosocket_bridge.web")
                        .joinpath("caption-stream.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    for message in messages:
        validator.validate(message)
