"""A thin adapter over pyst2's ``asterisk.manager.Manager`` that fixes its Python-3 defects.

pyst2 0.5.1 keeps the parts that work (``Event``, ``register_event``, the
exception types). Overridden here:

1. ``ManagerMsg.parse`` calls ``dict.has_key`` on a ``ChanVariable`` header:
   AttributeError kills the message thread and every later action hangs.
   -> ``AmiMessage.parse`` (collects ChanVariable headers into a dict).
2. ``send_action(self, cdict={}, **kwargs)`` mutates its shared default dict:
   keyword-only calls carry the previous action's headers and ActionID.
   -> a fresh dict per call.
3. Responses are matched FIFO from one queue, with no timeout: concurrent
   senders get each other's responses, a lost response hangs forever.
   -> responses are matched by ActionID, waits time out.
4. Threads are created in ``__init__`` (a closed Manager cannot reconnect) and
   the banner is only recognised while ``title`` is unset (a reconnect would
   mis-parse it). -> fresh threads, queues and banner state per ``connect()``.
5. The reader ``_receive_data`` treats any line containing "status will follow"
   as the start of an old-style Status listing and stops ending messages at
   empty lines until a "StatusComplete" line. Our own `UserEvent: Transcript`
   events come back to us (we read class `user`), so a caption with that phrase
   glued every later response into one message: Setvars timed out (~5 s) and the
   session was rebuilt. Asterisk 12+ ends every message with an empty line, and
   we never send Status. -> our reader frames with ``MessageFramer``
   (ami_protocol), where no header value changes the framing.
Also: header values are stripped of CR/LF (header injection) and checked
against Asterisk's 1024-byte line limit; ``connect`` has a timeout; ``close``
cannot block forever on a dead peer (pyst2 issue #26); a raising event
callback no longer kills the dispatch thread; the secret is never logged;
the reader gets lines and messages of bounded size (a peer that sends an
endless line ends the session instead of filling memory); Login waits out
Asterisk's 1 s delay before "Authentication failed" even with a short action
timeout, so a wrong secret is reported as such, not as a timeout.
"""
from __future__ import annotations

import itertools
import logging
import os
import queue
import socket
import threading
from typing import Optional

from asterisk.manager import (Event, Manager, ManagerAuthException, ManagerException,
                              ManagerMsg, ManagerSocketException)

from .ami_protocol import MessageFramer, encode_action, parse_header_lines, redacted

log = logging.getLogger(__name__)

__all__ = ["AmiConnection", "AmiMessage", "AmiTimeout", "ManagerAuthException",
           "ManagerException", "ManagerSocketException"]

_BANNER = "<banner>"  # waiter key for the greeting, which carries no ActionID
_ids = itertools.count(1)


class AmiTimeout(ManagerException):
    """No response with our ActionID arrived in time."""


class AmiMessage(ManagerMsg):
    def parse(self, response):
        self.headers, self.data = parse_header_lines(response)


class _Waiter:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.message: Optional[AmiMessage] = None

    def resolve(self, message: Optional[AmiMessage]) -> None:
        if not self.done.is_set():  # first outcome wins: a response beats a later hang-up
            self.message = message
            self.done.set()


# manager.c action_login: sleep(1) before answering "Authentication failed"
AUTH_FAILURE_DELAY_S = 1.0
MAX_LINE_BYTES = 64 * 1024  # Asterisk's own lines are far shorter (event values included)
MAX_MESSAGE_BYTES = 1024 * 1024


class _BoundedLines:
    """The session's socket file, iterated as lines of bounded size, for pyst2's reader (which
    iterates it with no limit). Too long a line or message reads as the end of the session."""

    def __init__(self, file, max_line_bytes: int = MAX_LINE_BYTES, max_message_bytes: int = MAX_MESSAGE_BYTES):
        self._file = file
        self.max_line_bytes, self.max_message_bytes = max_line_bytes, max_message_bytes
        self._message_bytes = 0

    def __iter__(self) -> "_BoundedLines":
        return self

    def __next__(self) -> bytes:
        line = self._file.readline(self.max_line_bytes + 1)
        if not line:
            raise StopIteration
        self._message_bytes = 0 if line.strip() == b"" else self._message_bytes + len(line)
        if len(line) > self.max_line_bytes or self._message_bytes > self.max_message_bytes:
            log.error("AMI peer sent a line or message over %d bytes; ending the session",
                      self.max_line_bytes if len(line) > self.max_line_bytes else self.max_message_bytes)
            raise StopIteration
        return line

    def write(self, data: bytes) -> int:
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class AmiConnection(Manager):
    """One AMI session at a time; ``connect()`` again after ``close()`` to reconnect."""

    def __init__(self, *, connect_timeout_s: float = 5.0, action_timeout_s: float = 5.0) -> None:
        super().__init__()  # its threads are never started; connect() makes fresh ones
        self.connect_timeout_s = connect_timeout_s
        self.action_timeout_s = action_timeout_s
        self._raw_socket: Optional[socket.socket] = None
        self._write_lock = threading.Lock()
        self._waiters: dict[str, _Waiter] = {}
        self._waiters_lock = threading.Lock()
        self._id_prefix = f"asb-{os.getpid()}-{next(_ids)}"
        self._id_counter = itertools.count(1)

    # -- connection lifecycle
    def connect(self, host: str, port: int = 5038) -> AmiMessage:
        """Open the TCP session and wait for the "Asterisk Call Manager/x.y" banner."""
        if self.connected():
            raise ManagerException("Already connected to manager")
        self._reset_session_state()
        try:
            sock = socket.create_connection((host, int(port)), timeout=self.connect_timeout_s)
        except OSError as exc:
            raise ManagerSocketException(exc.errno or 0, f"connect to {host}:{port}: {exc}")
        sock.settimeout(None)
        self._raw_socket = sock
        self._sock = _BoundedLines(sock.makefile("rwb"))
        banner = self._add_waiter(_BANNER)
        self._connected.set()
        self._running.set()
        self.message_thread.start()
        self.event_dispatch_thread.start()
        if not banner.done.wait(self.connect_timeout_s) or banner.message is None:
            self.close()
            raise ManagerSocketException(0, f"no AMI banner from {host}:{port}")
        return banner.message

    def login(self, username: str, secret: str, events: str = "on") -> AmiMessage:
        """Raises ManagerAuthException with Asterisk's message on rejection."""
        response = self.send_action({"Action": "Login", "Username": username,
                                     "Secret": secret, "Events": events},
                                    timeout_s=self.action_timeout_s + AUTH_FAILURE_DELAY_S)
        if response.get_header("Response") != "Success":
            raise ManagerAuthException(response.get_header("Message", "login rejected"))
        return response

    def close(self, timeout_s: float = 1.0) -> None:
        """Log off if possible, then tear the session down; never blocks long."""
        if self.connected():
            try:
                self.send_action({"Action": "Logoff"}, timeout_s=timeout_s)
            except ManagerException:
                pass
        self._shutdown_socket()
        for thread in (self.message_thread, self.event_dispatch_thread):
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout_s)
        self._running.clear()

    def __del__(self) -> None:  # pyst2 would log off (and maybe block) here
        self._shutdown_socket()

    # -- actions
    def send_action(self, cdict: Optional[dict] = None, timeout_s: Optional[float] = None,
                    **kwargs) -> AmiMessage:
        """Send one action and return the response carrying its ActionID.

        Raises AmiLineTooLong (before sending), ManagerSocketException when the
        session is down or drops, AmiTimeout when no response arrives in time.
        """
        headers = dict(cdict or {})
        headers.update(kwargs)
        action_id = str(headers.setdefault("ActionID", self._next_action_id()))
        payload = encode_action(headers)
        if not self.connected():
            raise ManagerSocketException(0, "Not connected")
        waiter = self._add_waiter(action_id)
        try:
            self._write(payload)
            if not waiter.done.wait(self.action_timeout_s if timeout_s is None else timeout_s):
                raise AmiTimeout(f"no response to {headers.get('Action')} {action_id}")
        finally:
            self._pop_waiter(action_id)
        if waiter.message is None:
            raise ManagerSocketException(0, "Connection Terminated")
        log.debug("AMI %s -> %s", redacted(headers), waiter.message.headers)
        return waiter.message

    # -- threads
    def _receive_data(self) -> None:
        """The reader thread: socket lines -> complete messages on the message queue."""
        framer = MessageFramer()
        try:
            for raw in self._sock:
                message = framer.feed(raw.decode("utf-8", "ignore"))
                if message is None:
                    continue
                if message[0] == MessageFramer.BANNER_HEADER:
                    title, _, version = message[1].partition("/")
                    self.title, self.version = title.strip(), version.strip()
                self._message_queue.put(message)
        except (OSError, ValueError):  # reset by the peer, or the file closed under us
            pass
        self._connected.clear()
        try:
            self._sock.close()
        except (OSError, ValueError):
            pass
        self._message_queue.put(None)

    def message_loop(self) -> None:
        reader = threading.Thread(target=self._receive_data, name="ami-reader", daemon=True)
        reader.start()
        try:
            while True:
                lines = self._message_queue.get()
                if not lines:
                    break
                self._route(AmiMessage(lines))
        finally:
            self._connected.clear()
            self._event_queue.put(None)
            self._fail_waiters()

    def event_dispatch(self) -> None:
        while True:
            event = self._event_queue.get()
            if event is None:
                break
            callbacks = self._event_callbacks.get(event.name, []) + self._event_callbacks.get("*", [])
            for callback in callbacks:
                try:
                    if callback(event, self):
                        break
                except Exception:
                    log.exception("AMI event callback %r failed on %s", callback, event.name)

    # -- internals
    def _reset_session_state(self) -> None:
        for thread in (self.message_thread, self.event_dispatch_thread):
            if thread.is_alive():
                raise ManagerException("previous AMI session threads still running")
        self.title = None
        self._message_queue = queue.Queue()
        self._event_queue = queue.Queue()
        self._connected = threading.Event()
        self._running = threading.Event()
        self.message_thread = threading.Thread(target=self.message_loop, name="ami-messages",
                                               daemon=True)
        self.event_dispatch_thread = threading.Thread(target=self.event_dispatch,
                                                      name="ami-events", daemon=True)

    def _route(self, message: AmiMessage) -> None:
        if message.has_header("Event"):
            self._event_queue.put(Event(message))
            return
        key = message.get_header("ActionID") or _BANNER
        with self._waiters_lock:
            waiter = self._waiters.get(key)
        if waiter is None:
            log.debug("unmatched AMI response dropped: %s", message.headers)
        else:
            waiter.resolve(message)

    def _write(self, payload: bytes) -> None:
        try:
            with self._write_lock:
                self._sock.write(payload)
                self._sock.flush()
        except (OSError, ValueError, AttributeError) as exc:
            raise ManagerSocketException(getattr(exc, "errno", 0) or 0, f"AMI write failed: {exc}")

    def _next_action_id(self) -> str:
        return f"{self._id_prefix}-{next(self._id_counter)}"

    def _add_waiter(self, key: str) -> _Waiter:
        waiter = _Waiter()
        with self._waiters_lock:
            self._waiters[key] = waiter
        return waiter

    def _pop_waiter(self, key: str) -> None:
        with self._waiters_lock:
            self._waiters.pop(key, None)

    def _fail_waiters(self) -> None:
        with self._waiters_lock:
            waiters = list(self._waiters.values())
        for waiter in waiters:
            waiter.resolve(None)

    def _shutdown_socket(self) -> None:
        sock, self._raw_socket = getattr(self, "_raw_socket", None), None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
