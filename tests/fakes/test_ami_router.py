"""One bridge, several PBXs (asterisk/ami_router.py): each call's AMI output goes to the server
that announced it, never to another PBX that happens to have a channel of the same name."""
from __future__ import annotations

import asyncio
import logging

import pytest

from audiosocket_bridge.asterisk.ami_router import AmiRouter
from audiosocket_bridge.asterisk.ami_sink import AmiConfig
from audiosocket_bridge.bridge import Bridge
from audiosocket_bridge.registrations import Registration, Registrations
from tests.support.bridges import ANY_LOOPBACK_PORT
from tests.support.builders import CHANNEL_A, UUID_A, UUID_B, call_info, event, eventually
from tests.support.fake_agi_client import run_agi
from audiosocket_bridge.testing.fake_ami import FakeAmi, transcriber
from tests.support.fake_engine import FakeEngine

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SECRETS = {"east": "east-secret", "west": "west-secret"}
UUID_C = "5e1bd9f0-0b1c-4f5e-9a33-2a9f2b8e0c11"


@pytest.fixture
def pbxs():
    fakes = {name: FakeAmi({"transcriber": transcriber(secret)}) for name, secret in SECRETS.items()}
    for fake in fakes.values():
        fake.start()
    yield fakes
    for fake in fakes.values():
        fake.stop()


def configs(pbxs) -> list[AmiConfig]:
    return [AmiConfig(name=name, port=fake.port, secret=SECRETS[name], backoff_initial_s=0.05,
                      connect_timeout_s=1.0, action_timeout_s=1.0, drain_timeout_s=2.0)
            for name, fake in pbxs.items()]


def announce(fake: FakeAmi, uuid: str, channel: str) -> None:
    fake.emit_user_event("AudioSocketStart", {"Uuid": uuid}, snapshot={"Channel": channel})


def captions(fake: FakeAmi, uuid: str) -> list:
    return [a for a in fake.named("UserEvent") if a.get("Uuid") == uuid]


def test_each_call_goes_to_its_own_pbx_though_the_channel_names_are_the_same(pbxs, caplog):
    registrations = Registrations()
    router = AmiRouter(configs(pbxs), registrations)
    router.start()
    try:
        assert router.wait_connected(5)
        announce(pbxs["east"], UUID_A, CHANNEL_A)
        announce(pbxs["west"], UUID_B, CHANNEL_A)  # the same name on the other PBX
        assert eventually(lambda: registrations.get(UUID_A) and registrations.get(UUID_B))
        assert (registrations.get(UUID_A).server, registrations.get(UUID_B).server) == ("east", "west")

        async def calls():
            for uuid, text in ((UUID_A, "east side"), (UUID_B, "west side"), (UUID_C, "nobody's")):
                call = call_info(uuid, channel=None)
                await router.call_started(call)
                await router.transcript(call, event("final", 0, text, uuid=uuid))
                await router.settle(call, 5)
                await router.call_ended(call)

        with caplog.at_level(logging.WARNING, "audiosocket_bridge.asterisk.ami_router"):
            asyncio.run(calls())
        east, west = pbxs["east"], pbxs["west"]
        assert east.wait_for(lambda f: f.variables.get((CHANNEL_A, "TRANSCRIPT")) == "east side")
        assert west.wait_for(lambda f: f.variables.get((CHANNEL_A, "TRANSCRIPT")) == "west side")
        assert eventually(lambda: len(captions(east, UUID_A)) == 2 and len(captions(west, UUID_B)) == 2)
        assert not captions(east, UUID_B) and not captions(west, UUID_A)
        # a call no server announced: no output anywhere, and a warning that says why
        assert not captions(east, UUID_C) and not captions(west, UUID_C)
        assert east.variables[(CHANNEL_A, "TRANSCRIPT")] == "east side"
        warnings = [r.getMessage() for r in caplog.records if UUID_C in r.getMessage()]
        assert len(warnings) == 1 and "server=NAME" in warnings[0]
        assert router.state == "connected" and router.pending == 0
        assert router.counters["registrations"] == 2
    finally:
        asyncio.run(router.close())


def test_with_one_server_every_call_goes_to_it(pbxs):
    east = pbxs["east"]
    router = AmiRouter(configs(pbxs)[:1], Registrations())
    router.start()
    try:
        assert router.wait_connected(5)

        async def unannounced_call():
            call = call_info(UUID_A)
            await router.transcript(call, event("final", 0, "hello"))
            await router.settle(call, 5)

        asyncio.run(unannounced_call())
        assert east.wait_for(lambda f: f.variables.get((CHANNEL_A, "TRANSCRIPT")) == "hello")
    finally:
        asyncio.run(router.close())


def test_the_server_of_a_fastagi_request():
    servers = [AmiConfig(name="east", host="10.0.1.5"), AmiConfig(name="west", host="10.0.2.5"),
               AmiConfig(name="local-a", host="127.0.0.1"), AmiConfig(name="local-b", host="localhost")]
    router = AmiRouter(servers, Registrations())
    assert router.server_for_agi("10.0.2.5", None) == "west"  # by the source address
    assert router.server_for_agi("10.0.9.9", None) is None  # no AMI server there
    assert router.server_for_agi("127.0.0.1", None) is None  # two PBXs on that host: ambiguous
    assert router.server_for_agi("127.0.0.1", "local-b") == "local-b"  # server= decides
    with pytest.raises(ValueError, match="unknown AMI server 'south'"):
        router.server_for_agi("10.0.1.5", "south")
    single = AmiRouter(servers[:1], Registrations())
    assert single.server_for_agi("192.0.2.1", None) == "east"
    with pytest.raises(ValueError, match="given twice"):
        AmiRouter([servers[0], servers[0]], Registrations())


def test_register_fastagi_names_the_server_and_refuses_an_unknown_one():
    servers = [AmiConfig(name="east", port=1, connect_timeout_s=0.1),
               AmiConfig(name="west", port=2, connect_timeout_s=0.1)]

    async def scenario():
        async with Bridge(FakeEngine(), storage_url="sqlite:///:memory:", listen=ANY_LOOPBACK_PORT,
                          agi_listen=ANY_LOOPBACK_PORT, ami=servers) as bridge:
            port = bridge.agi_server.port
            ok = await run_agi("127.0.0.1", port,
                               f"agi://127.0.0.1:{port}/register?uuid={UUID_A}&server=west")
            bad = await run_agi("127.0.0.1", port,
                                f"agi://127.0.0.1:{port}/register?uuid={UUID_B}&server=south")
            shared = bridge.storage.load_registration(UUID_A)
            return ok, bad, bridge.registrations.get(UUID_A), shared

    ok, bad, registration, shared = asyncio.run(scenario())
    assert ok.variables["AUDIOSOCKET_REGISTER"] == "OK" and registration.server == "west"
    assert shared == registration  # other bridges on this database see the server too
    assert bad.variables["AUDIOSOCKET_REGISTER"] == "ERROR"


def test_a_registration_keeps_its_server_when_merged():
    registrations = Registrations()
    registrations.register(Registration(UUID_A, channel=CHANNEL_A, server="east"))
    registrations.register(Registration(UUID_A, uniqueid="1.2"))
    assert registrations.get(UUID_A).server == "east"
