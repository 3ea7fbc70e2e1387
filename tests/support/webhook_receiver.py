"""A real HTTP receiver for webhook tests: http.server in a thread on a fixed loopback port.

down() closes the listening socket (connection refused), up() listens again on the same port;
answer(503, retry_after="1") makes it answer every POST that way while up (delay_s: that late). Every request is kept
in `requests`; those answered 2xx also in `accepted`.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from audiosocket_bridge.testing.ports import free_port
from audiosocket_bridge.outputs.webhook_policy import Backoff, WebhookOptions


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    at_s: float  # when, on time.monotonic()

    @property
    def document(self) -> dict:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self, port: Optional[int] = None) -> None:
        self.port = port or free_port()
        self.requests: list[Received] = []
        self.status, self.retry_after, self.delay_s = 200, None, 0.0
        self._changed = threading.Condition()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/transcripts"

    @property
    def accepted(self) -> list[Received]:
        with self._changed:
            return [r for r in self.requests if 200 <= r.status <= 299]

    def answer(self, status: int, retry_after: Optional[str] = None,
               delay_s: float = 0.0) -> "WebhookReceiver":
        """How the next POSTs are answered: this status, after delay_s."""
        self.status, self.retry_after, self.delay_s = status, retry_after, delay_s
        return self

    def up(self) -> "WebhookReceiver":
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="webhook-receiver")
        self._thread.start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def wait_accepted(self, count: int, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len([r for r in self.requests if 200 <= r.status <= 299]) < count:
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    return False
                self._changed.wait(remaining_s)
            return True

    def __enter__(self) -> "WebhookReceiver":
        return self

    def __exit__(self, *exc_info) -> None:
        self.down()

    def _record(self, received: Received) -> None:
        with self._changed:
            self.requests.append(received)
            self._changed.notify_all()

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, retry_after = receiver.status, receiver.retry_after
                time.sleep(receiver.delay_s)
                receiver._record(Received(self.path, dict(self.headers.items()), body, status,
                                          time.monotonic()))
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return None

        return Handler


SECRET = "test-secret"


def fast_options(url: str, **changes) -> WebhookOptions:
    """Webhook options for tests: this receiver's URL, quick retries and polls."""
    settings = dict(url=url, secret=SECRET, timeout_s=2.0, backoff=Backoff(base_s=0.05, cap_s=0.2),
                    poll_s=0.05, reconcile_s=0.2)
    return WebhookOptions(**{**settings, **changes})
