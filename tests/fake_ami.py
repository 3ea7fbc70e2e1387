"""A fake Asterisk Manager Interface that behaves like main/manager.c where we depend on it.

- banner "Asterisk Call Manager/<version>\\r\\n" on connect;
- input lines read like get_input(): CR LF or bare LF ends a line, and a line
  whose terminator is not within 1024 bytes is discarded; the action is then
  answered "Failed to parse message: line too long" (counted in line_too_long);
- Login: "Authentication accepted", or "Authentication failed" and the session
  closes; actions before login: "Permission denied"; Logoff: "Goodbye";
- every response echoes the action's ActionID;
- Setvar: "Variable Set" ("No such channel" for channels not in `channels`,
  when that set is given), stored in `variables`;
- UserEvent action: "Event Sent", then `Event: UserEvent` to every logged-in
  session with all headers but Action/UserEvent (ActionID included, as Asterisk does);
- emit_user_event(): an event as the dialplan UserEvent() app produces it, with
  the channel snapshot and optional ChanVariable headers;
- stop() and start() again on the same port (an Asterisk restart).
Test knob: `reply_delay_s` answers the named actions late on another thread, so
responses arrive out of order (as with several threads sharing one session).
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

MAX_LINE_BYTES = 1024


@dataclass
class ReceivedAction:
    headers: dict[str, str]
    lines: list[str]
    too_long: bool = False

    @property
    def name(self) -> str:
        return self.headers.get("Action", "")

    def get(self, key: str, default: str = "") -> str:
        return self.headers.get(key, default)


@dataclass
class _Session:
    sock: socket.socket
    lock: threading.Lock = field(default_factory=threading.Lock)
    username: Optional[str] = None
    events: str = "on"

    def send(self, text: str) -> None:
        with self.lock:
            try:
                self.sock.sendall(text.encode("utf-8"))
            except OSError:
                pass

    def wants(self, category: str) -> bool:
        mask = self.events.lower()
        return self.username is not None and mask not in ("off", "no", "false", "0") and (
            mask in ("on", "yes", "true", "1", "all") or category in mask.split(","))


def _response(kind: str, headers: dict[str, str], message: Optional[str] = None,
              extra: Optional[dict[str, str]] = None) -> str:
    lines = [f"Response: {kind}"]
    if headers.get("ActionID"):
        lines.append(f"ActionID: {headers['ActionID']}")
    if message is not None:
        lines.append(f"Message: {message}")
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return "\r\n".join(lines) + "\r\n\r\n"


class FakeAmi:
    def __init__(self, users: Optional[dict[str, str]] = None, *, version: str = "5.0.6",
                 channels: Optional[set[str]] = None) -> None:
        self.users = dict(users or {"transcriber": "s3cret"})
        self.version = version
        self.channels = channels
        self.reply_delay_s: dict[str, float] = {}
        self.actions: list[ReceivedAction] = []
        self.variables: dict[tuple[str, str], str] = {}
        self.line_too_long = 0
        self.logins_failed = 0
        self.port = 0
        self._listener: Optional[socket.socket] = None
        self._sessions: list[_Session] = []
        self._lock = threading.RLock()  # wait_for() predicates call named()
        self._changed = threading.Condition(self._lock)

    # -- lifecycle
    def start(self) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()
        return self.port

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            _close(session.sock)

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    # -- observation
    def wait_for(self, predicate: Callable[["FakeAmi"], bool], timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def named(self, action: str) -> list[ReceivedAction]:
        with self._lock:
            return [a for a in self.actions if a.name.lower() == action.lower()]

    def logged_in_sessions(self) -> int:
        with self._lock:
            return sum(1 for s in self._sessions if s.username)

    # -- events
    def emit_user_event(self, name: str, headers: dict[str, str], *,
                        snapshot: Optional[dict[str, str]] = None,
                        chan_vars: Optional[dict[str, str]] = None,
                        legacy_chanvar_channel: Optional[str] = None) -> None:
        """As app_userevent: channel snapshot, ChanVariable lines, then UserEvent + body."""
        lines = ["Event: UserEvent", "Privilege: user,all"]
        lines += [f"{k}: {v}" for k, v in (snapshot or {}).items()]
        prefix = f"ChanVariable({legacy_chanvar_channel})" if legacy_chanvar_channel else "ChanVariable"
        lines += [f"{prefix}: {k}={v}" for k, v in (chan_vars or {}).items()]
        lines.append(f"UserEvent: {name}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._broadcast("user", "\r\n".join(lines) + "\r\n\r\n")

    def _broadcast(self, category: str, text: str) -> None:
        with self._lock:
            sessions = [s for s in self._sessions if s.wants(category)]
        for session in sessions:
            session.send(text)

    # -- connection handling
    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            session = _Session(sock)
            with self._lock:
                self._sessions.append(session)
            threading.Thread(target=self._serve, args=(session,), daemon=True).start()

    def _serve(self, session: _Session) -> None:
        session.send(f"Asterisk Call Manager/{self.version}\r\n")
        try:
            for lines, too_long in self._messages(session.sock):
                if not self._process(session, lines, too_long):
                    break
        finally:
            _close(session.sock)
            with self._lock:
                if session in self._sessions:
                    self._sessions.remove(session)

    def _messages(self, sock: socket.socket):
        """Yield (header lines, too_long) per blank-line-terminated message, like get_input()."""
        buffer, lines, too_long = b"", [], False
        while True:
            try:
                data = sock.recv(4096)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while True:
                newline = buffer.find(b"\n")
                if newline == -1 or newline >= MAX_LINE_BYTES:
                    if len(buffer) >= MAX_LINE_BYTES:  # no terminator within inbuf: discard
                        buffer, too_long = buffer[MAX_LINE_BYTES - 1:], True
                        continue
                    break
                line = buffer[:newline].rstrip(b"\r").decode("utf-8", errors="replace")
                buffer = buffer[newline + 1:]
                if line:
                    lines.append(line)
                elif lines or too_long:
                    yield lines, too_long
                    lines, too_long = [], False

    def _process(self, session: _Session, lines: list[str], too_long: bool) -> bool:
        headers: dict[str, str] = {}
        for line in lines:
            key, sep, value = line.partition(":")
            if sep:
                headers.setdefault(key.strip(), value.strip())
        action = ReceivedAction(headers, lines, too_long)
        with self._changed:
            self.actions.append(action)
            if too_long:
                self.line_too_long += 1
            self._changed.notify_all()
        if too_long:
            session.send(_response("Error", headers, "Failed to parse message: line too long"))
            return True
        delay_s = self.reply_delay_s.get(action.name.lower())
        if delay_s:
            def late() -> None:
                time.sleep(delay_s)
                self._handle(session, headers)
            threading.Thread(target=late, daemon=True).start()
            return True
        return self._handle(session, headers)

    def _handle(self, session: _Session, headers: dict[str, str]) -> bool:
        name = headers.get("Action", "").lower()
        if not name:
            session.send(_response("Error", headers, "Missing action in request"))
            return True
        if session.username is None and name not in ("login", "logoff", "challenge"):
            session.send(_response("Error", headers, "Permission denied"))
            return True
        handler = getattr(self, f"_action_{name}", None)
        if handler is None:
            session.send(_response("Error", headers, f"Invalid/unknown command: {headers['Action']}. "
                                                     "Use Action: ListCommands to show available commands."))
            return True
        return handler(session, headers)

    def _action_login(self, session: _Session, headers: dict[str, str]) -> bool:
        username = headers.get("Username", "")
        if self.users.get(username) is None or self.users[username] != headers.get("Secret"):
            with self._lock:
                self.logins_failed += 1
            session.send(_response("Error", headers, "Authentication failed"))
            return False
        with self._lock:
            session.username = username
            session.events = headers.get("Events", "on") or "on"
        session.send(_response("Success", headers, "Authentication accepted"))
        if session.wants("system"):
            session.send("Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n")
        return True

    def _action_logoff(self, session: _Session, headers: dict[str, str]) -> bool:
        session.send(_response("Goodbye", headers, "Thanks for all the fish."))
        return False

    def _action_ping(self, session: _Session, headers: dict[str, str]) -> bool:
        session.send(_response("Success", headers, None, {"Ping": "Pong",
                                                          "Timestamp": f"{time.time():.6f}"}))
        return True

    def _action_setvar(self, session: _Session, headers: dict[str, str]) -> bool:
        channel, variable = headers.get("Channel", ""), headers.get("Variable", "")
        if not variable:
            session.send(_response("Error", headers, "No variable specified"))
        elif channel and self.channels is not None and channel not in self.channels:
            session.send(_response("Error", headers, "No such channel"))
        else:
            with self._changed:
                self.variables[(channel, variable)] = headers.get("Value", "")
                self._changed.notify_all()
            session.send(_response("Success", headers, "Variable Set"))
        return True

    def _action_userevent(self, session: _Session, headers: dict[str, str]) -> bool:
        body = [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("action", "userevent")]
        session.send(_response("Success", headers, "Event Sent"))
        event = ["Event: UserEvent", "Privilege: user,all", f"UserEvent: {headers.get('UserEvent', '')}"]
        self._broadcast("user", "\r\n".join(event + body) + "\r\n\r\n")
        return True


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
