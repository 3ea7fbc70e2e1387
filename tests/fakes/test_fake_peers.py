"""The fake peers agree with Asterisk 22.10.1 (main/manager.c, apps/app_audiosocket.c,
res/res_audiosocket.c) where the bridge depends on them."""
from __future__ import annotations

import asyncio
import socket
import struct
import time
import warnings
from pathlib import Path
from typing import Optional

import pytest

from audiosocket_bridge.testing.audiosocket_client import (NO_ACTIVITY_TIMEOUT_MS, ULAW_FRAME_BYTES, AudioSocketClient,
                                message, ulaw_byte, ulaw_encode)
from audiosocket_bridge.testing.fake_ami import AUTH_FAIL_DELAY_S, AmiUser, EventFilter, FakeAmi, users_from_manager_conf

MANAGER_CONF = Path(__file__).resolve().parents[2] / "dialplan" / "manager.conf"


class RawAmi:
    """A bare AMI session: what is on the wire, no client library in between."""

    def __init__(self, ami: FakeAmi) -> None:
        self.sock = socket.create_connection(("127.0.0.1", ami.port), timeout=3)
        self.file = self.sock.makefile("rb")
        self.banner = self.file.readline().decode()

    def send(self, *lines: str) -> None:
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def read(self) -> Optional[list[str]]:
        """One message as its lines, or None at the end of the session."""
        lines = []
        for raw in iter(self.file.readline, b""):
            line = raw.decode().rstrip("\r\n")
            if not line:
                return lines
            lines.append(line)
        return None

    def login(self, user: str = "u", secret: str = "pw", events: Optional[str] = None) -> list[str]:
        self.send("Action: Login", f"Username: {user}", f"Secret: {secret}",
                  *([f"Events: {events}"] if events is not None else []))
        return self.read()

    def action(self, *lines: str) -> list[str]:
        self.send(*lines)
        return self.read()

    def nothing_more(self, wait_s: float = 0.3) -> bool:
        self.sock.settimeout(wait_s)
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""  # closed counts as nothing
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(3)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def start_ami():
    fakes: list[FakeAmi] = []

    def start(users: dict[str, AmiUser], **kwargs) -> FakeAmi:
        fake = FakeAmi(users, **kwargs)
        fake.start()
        fakes.append(fake)
        return fake

    yield start
    for fake in fakes:
        fake.stop()


# -- AMI

def test_banner_is_ami_version_of_asterisk_22(start_ami):
    ami = start_ami({})
    assert RawAmi(ami).banner == "Asterisk Call Manager/11.0.0\r\n"


@pytest.mark.parametrize("write, action, allowed", [
    ("", ("Action: Ping",), True),  # registered with no class
    ("user", ("Action: Setvar", "Variable: V", "Value: 1"), False),  # Setvar needs call
    ("call", ("Action: Setvar", "Variable: V", "Value: 1"), True),
    ("call", ("Action: UserEvent", "UserEvent: Transcript"), False),  # UserEvent needs user
    ("user", ("Action: UserEvent", "UserEvent: Transcript"), True),
    ("all", ("Action: UserEvent", "UserEvent: Transcript"), True),
])
def test_an_action_needs_its_class_in_the_users_write(start_ami, write, action, allowed):
    ami = start_ami({"u": AmiUser("pw", read="", write=write)})
    session = RawAmi(ami)
    assert session.login()[:2] == ["Response: Success", "Message: Authentication accepted"]
    response = session.action(*action, "ActionID: 9")
    if allowed:
        assert response[0] == "Response: Success"
    else:
        assert response == ["Response: Error", "ActionID: 9", "Message: Permission denied"]


def test_actions_before_login_are_denied_and_login_needs_no_class(start_ami):
    ami = start_ami({"u": AmiUser("pw")})
    session = RawAmi(ami)
    assert session.action("Action: Ping") == ["Response: Error", "Message: Permission denied"]
    assert session.login()[0] == "Response: Success"
    assert session.login() == ["Response: Success", "Message: Already authenticated"]


def test_a_failed_login_answers_after_asterisks_delay_then_closes(start_ami):
    assert FakeAmi().auth_fail_delay_s == AUTH_FAIL_DELAY_S == 1.0
    ami = start_ami({"u": AmiUser("pw", write="all")}, auth_fail_delay_s=0.3)
    session = RawAmi(ami)
    started = time.monotonic()
    assert session.login(secret="wrong") == ["Response: Error", "Message: Authentication failed"]
    assert time.monotonic() - started >= 0.3
    assert session.read() is None and ami.logins_failed == 1


def test_events_reach_only_users_that_read_their_class(start_ami):
    ami = start_ami({"reader": AmiUser("pw", read="user"), "caller": AmiUser("pw", read="call"),
                     "sender": AmiUser("pw", write="user")})
    reader, other, sender = RawAmi(ami), RawAmi(ami), RawAmi(ami)
    reader.login("reader")
    other.login("caller")
    sender.login("sender")
    assert sender.action("Action: UserEvent", "UserEvent: Ping")[0] == "Response: Success"
    assert reader.read() == ["Event: UserEvent", "Privilege: user,all", "UserEvent: Ping"]
    assert other.nothing_more() and sender.nothing_more()  # the sender does not read `user`


@pytest.mark.parametrize("events, delivered", [(None, True), ("on", True), ("user", True),
                                               ("call,user", True), ("off", False),
                                               ("system", False)])
def test_the_login_events_mask_narrows_what_is_read(start_ami, events, delivered):
    ami = start_ami({"u": AmiUser("pw", read="all")})
    session = RawAmi(ami)
    session.login(events=events)
    if events in (None, "on", "system"):
        assert session.read()[0] == "Event: FullyBooted"  # read and asked for `system`
    ami.emit_user_event("Hello", {"A": "1"})
    if delivered:
        assert session.read()[-2:] == ["UserEvent: Hello", "A: 1"]
    else:
        assert session.nothing_more()


def test_a_user_event_keeps_its_header_lines_verbatim_in_order_with_duplicates(start_ami):
    ami = start_ami({"u": AmiUser("pw", read="user", write="user")})
    session = RawAmi(ami)
    session.login()
    session.send("Action: UserEvent", "UserEvent: Transcript", "Text: one", "Text: two",
                 "ActionID: 5", "actionx: kept", "Uuid:  spaced")
    assert session.read() == ["Response: Success", "ActionID: 5", "Message: Event Sent"]
    assert session.read() == ["Event: UserEvent", "Privilege: user,all", "UserEvent: Transcript",
                              "Text: one", "Text: two", "ActionID: 5", "actionx: kept",
                              "Uuid:  spaced"]
    assert ami.named("UserEvent")[0].lines[2:4] == ["Text: one", "Text: two"]


def test_the_shipped_manager_conf_gives_the_bridge_least_rights_and_its_start_events(start_ami):
    users = users_from_manager_conf(MANAGER_CONF, {"transcriber": "pw", "captions": "pw"})
    assert (users["transcriber"].read_classes, users["transcriber"].write_classes) == (
        {"user"}, {"call", "user"})
    assert (users["captions"].read_classes, users["captions"].write_classes) == ({"user"}, set())
    ami = start_ami(users)
    bridge = RawAmi(ami)
    bridge.login("transcriber", events="user")
    assert bridge.action("Action: UserEvent", "UserEvent: Transcript",
                         "Text: UserEvent: AudioSocketStart")[0] == "Response: Success"
    ami.emit_user_event("AudioSocketStarted", {"Uuid": "x"})
    ami.emit_user_event("AudioSocketStart", {"Uuid": "y"}, snapshot={"Channel": "PJSIP/a-1"})
    assert bridge.read() == ["Event: UserEvent", "Privilege: user,all", "Channel: PJSIP/a-1",
                             "UserEvent: AudioSocketStart", "Uuid: y"]
    assert bridge.nothing_more()


@pytest.mark.parametrize("option, value, error", [
    ("eventfilter(name(UserEvent),header(UserEvent))", "AudioSocketStart", True),  # method none
    ("eventfilter(name(UserEvent),method(exact))", "", True),
    ("eventfilter(nme(UserEvent),method(exact))", "X", True),
    ("eventfilter", "", True),
    ("eventfilter(name(VarSet),method(none))", "", False),
    ("eventfilter", "!Channel: DAHDI", False),
])
def test_eventfilter_lines_are_refused_as_manager_c_refuses_them(option, value, error):
    if error:
        with pytest.raises(ValueError):
            EventFilter.parse(option, value)
    else:
        EventFilter.parse(option, value)


def test_a_plain_secret_is_not_taken_for_a_user():
    with pytest.raises(TypeError, match="AmiUser"):
        FakeAmi({"transcriber": "s3cret"})


# -- AudioSocket client

class FakeBridgeSide:
    """The server end of one AudioSocket connection, scripted by the test."""

    def __init__(self, reply: bytes = b"", close_after_reply: bool = False) -> None:
        self.reply, self.close_after_reply = reply, close_after_reply
        self.received = bytearray()
        self.peer_closed = asyncio.Event()
        self.port = 0

    async def start(self) -> "FakeBridgeSide":
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.received += await reader.readexactly(19)  # the UUID message
        if self.reply:
            writer.write(self.reply)
            await writer.drain()
        while chunk := await reader.read(4096):
            self.received += chunk
        self.peer_closed.set()
        writer.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


@pytest.mark.parametrize("reply, hangup, error", [
    (message(0x00), True, None),
    (message(0x01, bytes(16)), False, "non-audio message kind 0x01 from server"),
    (message(0x10), False, "zero-length message from server"),
])
def test_the_client_closes_its_socket_after_a_hangup_or_an_error(reply, hangup, error):
    async def scenario():
        bridge = await FakeBridgeSide(message(0x10, bytes(320)) + reply).start()
        client = await AudioSocketClient("127.0.0.1", bridge.port).connect()
        assert await client.wait_server_end(3)
        await asyncio.wait_for(bridge.peer_closed.wait(), 3)  # app_audiosocket close()s
        assert (client.server_hangup, client.server_error) == (hangup, error)
        assert len(client.received_audio) == 320
        assert not await client.send_silence(0.02)
    run(scenario())


def test_no_activity_either_way_ends_the_session_like_app_audiosocket():
    assert NO_ACTIVITY_TIMEOUT_MS == 2000
    assert AudioSocketClient("127.0.0.1", 1).no_activity_timeout_ms == 2000

    async def scenario():
        bridge = await FakeBridgeSide().start()
        client = await AudioSocketClient("127.0.0.1", bridge.port, no_activity_timeout_ms=300).connect()
        for _ in range(5):  # frames keep it alive
            await asyncio.sleep(0.15)
            assert await client.send_silence(0.02)
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(bridge.peer_closed.wait(), 3)
        assert 0.25 <= asyncio.get_running_loop().time() - started < 1.0
        assert client.timed_out and client.ended and not client.server_closed
        assert not await client.wait_server_end(1)  # the client gave up, not the server
    run(scenario())


def test_the_no_activity_timeout_can_be_turned_off():
    async def scenario():
        bridge = await FakeBridgeSide().start()
        client = await AudioSocketClient("127.0.0.1", bridge.port, no_activity_timeout_ms=None).connect()
        await asyncio.sleep(0.4)
        assert not client.ended and not bridge.peer_closed.is_set()
        await client.close()
    run(scenario())


def test_ulaw_audio_goes_as_160_byte_payloads_labelled_0x10():
    pcm = struct.pack("<400h", *[(n * 997) % 65536 - 32768 for n in range(400)])  # 50 ms

    async def scenario():
        bridge = await FakeBridgeSide().start()
        client = await AudioSocketClient("127.0.0.1", bridge.port).connect()
        assert await client.send_ulaw(pcm) == 3
        await client.close()
        await asyncio.wait_for(bridge.peer_closed.wait(), 3)
        return bytes(bridge.received[19:])

    wire = run(scenario())
    ulaw = ulaw_encode(pcm)
    assert wire == (message(0x10, ulaw[:ULAW_FRAME_BYTES]) + message(0x10, ulaw[160:320])
                    + message(0x10, ulaw[320:]))


def test_ulaw_encoding_is_g711():
    assert [ulaw_byte(s) for s in (0, -1, 32767, -32768, 1000, -1000)] == [
        0xFF, 0x7F, 0x80, 0x00, 0xCE, 0x4E]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # gone in Python 3.13
    pcm = struct.pack("<65536h", *range(-32768, 32768))
    ours, theirs = ulaw_encode(pcm), audioop.lin2ulaw(pcm, 2)
    # audioop quantises from 14 bits (Sun's g711.c), so a few codes at segment edges differ by one
    assert all(abs(a - b) <= 1 for a, b in zip(ours, theirs))
    assert sum(a != b for a, b in zip(ours, theirs)) < len(ours) // 100
