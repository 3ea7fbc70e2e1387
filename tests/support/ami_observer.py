"""A plain-socket AMI client for tests against a real Asterisk: it logs in, records every event
in arrival order (headers kept as raw ordered pairs) and sends actions. Written apart from the
bridge's own AMI code, so that the tests do not check the adapter against itself."""
from __future__ import annotations

import itertools
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple


@dataclass(frozen=True)
class Message:
    pairs: Tuple[Tuple[str, str], ...]
    received_s: float  # time.monotonic() on arrival

    def get(self, name: str, default: str = "") -> str:
        return next((v for k, v in self.pairs if k.lower() == name.lower()), default)

    @property
    def event(self) -> str:
        return self.get("Event")


Predicate = Callable[[Message], bool]


class AmiObserver:
    def __init__(self, port: int, username: str, secret: str, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.banner = self.sock.makefile("rb").readline().decode().strip()  # before the reader
        self.sock.settimeout(None)  # quiet stretches of a call are no reason to stop reading
        self.messages: List[Message] = []
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._buffer = b""
        threading.Thread(target=self._read, daemon=True, name="ami-observer").start()
        reply = self.action({"Action": "Login", "Username": username, "Secret": secret})
        if reply.get("Response") != "Success":
            raise RuntimeError(f"AMI login failed: {reply.pairs}")

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while b"\r\n\r\n" in buffer:
                block, buffer = buffer.split(b"\r\n\r\n", 1)
                self._add(block.decode("utf-8", errors="replace"))

    def _add(self, block: str) -> None:
        pairs = tuple(tuple(p.strip() for p in line.split(":", 1)) for line in block.split("\r\n")
                      if ":" in line)
        with self._cond:
            self.messages.append(Message(pairs, time.monotonic()))
            self._cond.notify_all()

    def action(self, headers: Dict[str, str], timeout_s: float = 10.0,
               variables: Optional[Dict[str, str]] = None) -> Message:
        action_id = f"obs-{next(self._ids)}"
        lines = [f"{k}: {v}" for k, v in headers.items()] + [f"ActionID: {action_id}"]
        lines += [f"Variable: {k}={v}" for k, v in (variables or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return self.wait_for(lambda m: m.get("ActionID") == action_id and bool(m.get("Response")),
                             timeout_s)

    def originate(self, channel: str, context: str, exten: str, variables: Dict[str, str]) -> None:
        reply = self.action({"Action": "Originate", "Channel": channel, "Context": context,
                             "Exten": exten, "Priority": "1", "Async": "true"}, variables=variables)
        assert reply.get("Response") == "Success", reply.pairs

    def wait_for(self, predicate: Predicate, timeout_s: float = 30.0, start: int = 0) -> Message:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = next((m for m in self.messages[start:] if predicate(m)), None)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no such AMI message within {timeout_s:g} s; last events: "
                                         f"{[m.event or m.get('Response') for m in self.messages[-30:]]}")
                self._cond.wait(remaining)

    def matching(self, predicate: Predicate, start: int = 0) -> List[Message]:
        with self._cond:
            return [m for m in self.messages[start:] if predicate(m)]

    def index_of(self, message: Message) -> int:
        with self._cond:
            return self.messages.index(message)

    def mark(self) -> int:
        with self._cond:
            return len(self.messages)

    def close(self) -> None:
        try:
            self.sock.sendall(b"Action: Logoff\r\n\r\n")
        except OSError:
            pass
        self.sock.close()
