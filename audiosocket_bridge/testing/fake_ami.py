"""A fake Asterisk Manager Interface that behaves like main/manager.c (22.10.1) where we depend on it.

- banner "Asterisk Call Manager/11.0.0\\r\\n" (AMI_VERSION of Asterisk 22) on connect;
- input lines read like get_input(): CR LF or bare LF ends a line, and a line
  whose terminator is not within 1024 bytes is discarded; the action is then
  answered "Failed to parse message: line too long" (counted in line_too_long);
- users as in manager.conf (AmiUser, or users_from_manager_conf() on a real
  file): `read` and `write` class lists (Asterisk's default: none), eventfilter
  lines (legacy regex and the advanced `eventfilter(...)` form);
- actions before login: "Permission denied" (Login, Logoff and Challenge
  excepted); after it an action runs only if its class (manager.c's registration:
  Setvar `call`, UserEvent `user`; Login, Logoff, Ping none) is in the user's
  `write`, else "Permission denied";
- Login: "Authentication accepted" (FullyBooted follows if the user reads and
  asked for `system`), or, after `auth_fail_delay_s` (Asterisk: sleep(1)),
  "Authentication failed" and the session closes; the Login `Events:` header
  sets the session's event mask as strings_to_mask() does (absent: all);
- an event reaches a session only if its class is in the user's `read` and in
  the session's event mask, and it passes the user's eventfilters; it carries
  "Privilege: <class>,all";
- every response echoes the action's ActionID;
- Setvar: "Variable Set" ("No such channel" for channels not in `channels`,
  when that set is given), stored in `variables`;
- UserEvent action: "Event Sent", then `Event: UserEvent` (class user) with the
  action's header lines verbatim and in order, duplicates kept, all but those
  starting "Action:" or "UserEvent:" (so ActionID is kept, as Asterisk does);
- emit_user_event(): an event as the dialplan UserEvent() app produces it, with
  the channel snapshot and optional ChanVariable headers;
- stop() and start() again on the same port (an Asterisk restart).
Not modelled: ACLs (permit/deny), numeric event masks, MD5 challenge.
Test knob: `reply_delay_s` answers the named actions late on another thread, so
responses arrive out of order (as with several threads sharing one session).
"""
from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

MAX_LINE_BYTES = 1024
AMI_VERSION = "11.0.0"
AUTH_FAIL_DELAY_S = 1.0  # manager.c action_login: sleep(1) before "Authentication failed"

# manager.c perms[], without the "all" and "none" aliases
CLASSES = frozenset({"system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
                     "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test",
                     "security", "message"})
# the authority each action is registered with (ast_manager_register_xml_core); empty: anyone
ACTION_CLASSES: dict[str, frozenset[str]] = {
    "login": frozenset(), "logoff": frozenset(), "challenge": frozenset(), "ping": frozenset(),
    "setvar": frozenset({"call"}), "userevent": frozenset({"user"}),
}
_TRUE = {"yes", "true", "y", "t", "1", "on"}  # ast_true()
_FALSE = {"no", "false", "n", "f", "0", "off"}  # ast_false()

Headers = Union[Mapping[str, str], Sequence[tuple[str, str]]]


def parse_classes(text: str) -> frozenset[str]:
    """A manager.conf read/write value ("call,user", "all") as get_perm() reads it."""
    names = {part.strip().lower() for part in text.split(",") if part.strip()}
    return CLASSES if "all" in names else frozenset(names & CLASSES)


def event_mask(text: str, current: frozenset[str]) -> frozenset[str]:
    """The Login `Events:` header as set_eventmask()/strings_to_mask() read it."""
    value = text.strip().lower()
    if not value:
        return current  # strings_to_mask() returns -1: the mask stays as it was
    if value in _FALSE:
        return frozenset()
    if value in _TRUE:
        return CLASSES
    return parse_classes(value)


# -- eventfilter -------------------------------------------------------------

_FILTER_METHODS = {"regex", "exact", "starts_with", "ends_with", "contains", "none"}


@dataclass(frozen=True)
class EventFilter:
    """One manager.conf `eventfilter` line, as manager_add_filter() parses it."""

    exclude: bool
    method: str  # regex | exact | starts_with | ends_with | contains | none
    pattern: str
    event_name: Optional[str] = None
    header: Optional[str] = None  # "Name:" (the colon is added as Asterisk does)

    @classmethod
    def parse(cls, option: str, value: str) -> "EventFilter":
        """`eventfilter = [!]regex`, or the advanced
        `eventfilter(action(..),name(..),header(..),method(..)) = value`."""
        exclude, pattern = (True, value[1:]) if value.startswith("!") else (False, value)
        if "(" not in option:
            if not pattern:
                raise ValueError(f"legacy eventfilter needs a pattern: {option} = {value}")
            return cls(exclude, "regex", pattern)
        criteria = option[option.index("(") + 1:].strip()
        if not criteria.endswith(")"):
            raise ValueError(f"eventfilter options not formatted correctly: {option}")
        fields: dict[str, str] = {}
        for token in filter(None, re.split(r"[ ,)]", criteria)):
            name, paren, argument = token.partition("(")
            if name not in ("action", "name", "header", "method") or not paren or not argument.strip():
                raise ValueError(f"bad eventfilter option {token!r} in {option}")
            fields[name] = argument.strip()
        if not fields:
            raise ValueError(f"eventfilter without action, name, header or method: {option}")
        if fields.get("action", "include") not in ("include", "exclude"):
            raise ValueError(f"eventfilter action must be include or exclude: {option}")
        method = fields.get("method", "none")
        if method not in _FILTER_METHODS or (method == "none") != (not pattern):
            raise ValueError(f"eventfilter method {method!r} does not fit pattern {pattern!r}")
        if method == "none" and "name" not in fields and "header" not in fields:
            raise ValueError(f"eventfilter with neither name, header nor pattern: {option}")
        header = fields.get("header")
        if header is not None and not header.endswith(":"):
            header += ":"
        return cls(exclude or fields.get("action") == "exclude", method, pattern,
                   fields.get("name"), header)

    def matches(self, event_name: str, payload: str) -> bool:
        if self.event_name is not None and self.event_name != event_name:
            return False
        if self.header is None:
            return self._match(payload)
        for line in payload.splitlines():
            if line.startswith(self.header):
                value = line[len(self.header):].lstrip(" \t")
                if value and self._match(value):
                    return True
        return False

    def _match(self, text: str) -> bool:
        if self.method == "regex":
            return re.search(self.pattern, text) is not None
        if self.method == "exact":
            return text == self.pattern
        if self.method == "starts_with":
            return text.startswith(self.pattern)
        if self.method == "ends_with":
            return text.endswith(self.pattern)
        if self.method == "contains":
            return self.pattern in text
        return True  # none


def should_send(filters: Sequence[EventFilter], event_name: str, payload: str) -> bool:
    """manager.c should_send_event(): no filters pass all; includes first, then excludes."""
    includes = [f for f in filters if not f.exclude]
    excludes = [f for f in filters if f.exclude]
    if includes and not any(f.matches(event_name, payload) for f in includes):
        return False
    return not any(f.matches(event_name, payload) for f in excludes)


# -- users -------------------------------------------------------------------

@dataclass(frozen=True)
class AmiUser:
    """One manager.conf user section."""

    secret: str
    read: str = ""  # class list; Asterisk's default is none
    write: str = ""
    eventfilters: tuple[tuple[str, str], ...] = ()  # (option, value) lines, e.g. ("eventfilter", "!X")

    def __post_init__(self) -> None:
        self.filters  # noqa: B018  (a bad eventfilter raises here, not in a session thread)

    @property
    def read_classes(self) -> frozenset[str]:
        return parse_classes(self.read)

    @property
    def write_classes(self) -> frozenset[str]:
        return parse_classes(self.write)

    @property
    def filters(self) -> tuple[EventFilter, ...]:
        return tuple(EventFilter.parse(option, value) for option, value in self.eventfilters)


def transcriber(secret: str) -> AmiUser:
    """The bridge's user with the classes dialplan/manager.conf gives it, and no eventfilter."""
    return AmiUser(secret, read="user", write="call,user")


def users_from_manager_conf(path: Union[str, Path],
                            secrets: Optional[Mapping[str, str]] = None) -> dict[str, AmiUser]:
    """The user sections of a manager.conf; `secrets` replaces the file's placeholders."""
    users: dict[str, AmiUser] = {}
    section: Optional[str] = None
    values: dict[str, str] = {}
    filters: list[tuple[str, str]] = []

    def finish() -> None:
        if section and section != "general":
            secret = (secrets or {}).get(section, values.get("secret", ""))
            users[section] = AmiUser(secret, values.get("read", ""), values.get("write", ""),
                                     tuple(filters))

    for raw in Path(path).read_text().splitlines():
        line = re.split(r"(?<!\\);", raw, maxsplit=1)[0].replace("\\;", ";").strip()
        if line.startswith("["):
            finish()
            section, values, filters = line[1:line.index("]")].strip(), {}, []
        elif "=" in line and section is not None:
            key, _, value = line.partition("=")
            key, value = key.strip(), value.lstrip(">").strip()
            if key.lower().startswith("eventfilter"):
                filters.append((key, value))
            else:
                values[key.lower()] = value
    finish()
    return users


# -- server ------------------------------------------------------------------

@dataclass
class ReceivedAction:
    headers: dict[str, str]  # first occurrence of each name, as astman_get_header() finds it
    lines: list[str]  # every header line, verbatim and in order
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
    read: frozenset[str] = frozenset()
    write: frozenset[str] = frozenset()
    send_events: frozenset[str] = CLASSES  # a new session's mask is -1: everything
    filters: tuple[EventFilter, ...] = ()

    def send(self, text: str) -> None:
        with self.lock:
            try:
                self.sock.sendall(text.encode("utf-8"))
            except OSError:
                pass

    def wants(self, category: str, event_name: str, payload: str) -> bool:
        return (self.username is not None and category in self.read and category in self.send_events
                and should_send(self.filters, event_name, payload))


def _response(kind: str, headers: dict[str, str], message: Optional[str] = None,
              extra: Optional[dict[str, str]] = None) -> str:
    lines = [f"Response: {kind}"]
    if headers.get("ActionID"):
        lines.append(f"ActionID: {headers['ActionID']}")
    if message is not None:
        lines.append(f"Message: {message}")
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return "\r\n".join(lines) + "\r\n\r\n"


def _header_lines(headers: Headers) -> list[str]:
    items: Iterable[tuple[str, str]] = headers.items() if isinstance(headers, Mapping) else headers
    return [f"{k}: {v}" for k, v in items]


def _first_header(lines: Sequence[str], name: str) -> str:
    """astman_get_header(): the first "Name:" line (case-insensitive), blanks skipped."""
    for line in lines:
        if line[:len(name) + 1].lower() == name.lower() + ":":
            return line[len(name) + 1:].lstrip(" \t")
    return ""


class FakeAmi:
    def __init__(self, users: Optional[Mapping[str, AmiUser]] = None, *,
                 version: str = AMI_VERSION, channels: Optional[set[str]] = None,
                 auth_fail_delay_s: float = AUTH_FAIL_DELAY_S) -> None:
        self.users = dict(users if users is not None else {"transcriber": transcriber("s3cret")})
        for name, user in self.users.items():
            if not isinstance(user, AmiUser):
                raise TypeError(f"user {name!r}: give an AmiUser (secret, read, write), e.g. "
                                f"transcriber(secret), not {type(user).__name__}")
        self.version = version
        self.channels = channels
        self.auth_fail_delay_s = auth_fail_delay_s
        self.reply_delay_s: dict[str, float] = {}
        self.actions: list[ReceivedAction] = []
        self.variables: dict[tuple[str, str], str] = {}
        self.line_too_long = 0
        self.logins = 0
        self.logins_failed = 0
        self.permission_denied = 0
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
    def emit_user_event(self, name: str, headers: Headers, *,
                        snapshot: Optional[dict[str, str]] = None,
                        chan_vars: Optional[dict[str, str]] = None,
                        legacy_chanvar_channel: Optional[str] = None) -> None:
        """As app_userevent: channel snapshot, ChanVariable lines, then UserEvent + body."""
        lines = [f"{k}: {v}" for k, v in (snapshot or {}).items()]
        prefix = f"ChanVariable({legacy_chanvar_channel})" if legacy_chanvar_channel else "ChanVariable"
        lines += [f"{prefix}: {k}={v}" for k, v in (chan_vars or {}).items()]
        lines.append(f"UserEvent: {name}")
        lines += _header_lines(headers)
        self.emit_event("UserEvent", "user", lines)

    def emit_event(self, event_name: str, category: str, body_lines: Sequence[str]) -> None:
        """Queue an event as manager_event(): Event and Privilege lines, then the body."""
        lines = [f"Event: {event_name}", f"Privilege: {category},all", *body_lines]
        payload = "\r\n".join(lines) + "\r\n\r\n"
        with self._lock:
            sessions = [s for s in self._sessions if s.wants(category, event_name, payload)]
        for session in sessions:
            session.send(payload)

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
                self._handle(session, action)
            threading.Thread(target=late, daemon=True).start()
            return True
        return self._handle(session, action)

    def _handle(self, session: _Session, action: ReceivedAction) -> bool:
        """process_message(): authentication, then the action's class against `write`."""
        headers, name = action.headers, action.name.lower()
        if not name:
            session.send(_response("Error", headers, "Missing action in request"))
            return True
        if session.username is None and name not in ("login", "logoff", "challenge"):
            self._deny(session, headers)
            return True
        handler = getattr(self, f"_action_{name}", None)
        if handler is None:
            session.send(_response("Error", headers, f"Invalid/unknown command: {headers['Action']}. "
                                                     "Use Action: ListCommands to show available commands."))
            return True
        needed = ACTION_CLASSES.get(name, frozenset())
        if needed and not needed & session.write:
            self._deny(session, headers)
            return True
        return handler(session, action)

    def _deny(self, session: _Session, headers: dict[str, str]) -> None:
        with self._lock:
            self.permission_denied += 1
        session.send(_response("Error", headers, "Permission denied"))

    def _action_login(self, session: _Session, action: ReceivedAction) -> bool:
        headers = action.headers
        if session.username is not None:
            session.send(_response("Success", headers, "Already authenticated"))
            return True
        user = self.users.get(headers.get("Username", ""))
        if user is None or user.secret != headers.get("Secret"):
            time.sleep(self.auth_fail_delay_s)
            with self._lock:
                self.logins_failed += 1
            session.send(_response("Error", headers, "Authentication failed"))
            return False
        with self._lock:
            session.username = headers["Username"]
            session.read, session.write = user.read_classes, user.write_classes
            session.filters = user.filters
            session.send_events = event_mask(_first_header(action.lines, "Events"), session.send_events)
            self.logins += 1
        session.send(_response("Success", headers, "Authentication accepted"))
        if "system" in session.send_events and "system" in session.read:
            session.send("Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n")
        return True

    def _action_logoff(self, session: _Session, action: ReceivedAction) -> bool:
        session.send(_response("Goodbye", action.headers, "Thanks for all the fish."))
        return False

    def _action_ping(self, session: _Session, action: ReceivedAction) -> bool:
        session.send(_response("Success", action.headers, None, {"Ping": "Pong",
                                                                 "Timestamp": f"{time.time():.6f}"}))
        return True

    def _action_setvar(self, session: _Session, action: ReceivedAction) -> bool:
        headers = action.headers
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

    def _action_userevent(self, session: _Session, action: ReceivedAction) -> bool:
        """action_userevent(): every header line but Action:/UserEvent: ones, verbatim, in order."""
        body = [line for line in action.lines
                if not line[:10].lower().startswith(("userevent:", "action:"))]
        session.send(_response("Success", action.headers, "Event Sent"))
        self.emit_event("UserEvent", "user",
                        [f"UserEvent: {_first_header(action.lines, 'UserEvent')}", *body])
        return True


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
