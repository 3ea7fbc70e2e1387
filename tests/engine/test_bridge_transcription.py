"""End to end with the REAL engine (tiny.en) and real Asterisk prompts over AudioSocket."""
import asyncio
import re

from audiosocket_bridge.bridge import Bridge
from audiosocket_bridge.registrations import CallOptions, Registration
from tests.support.bridges import bridge_under_test, caller
from audiosocket_bridge.testing.prompts import prompt, resample_pcm
from whisper.streaming.sim import silence

PAUSE_S = 1.5


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def recall(reference: str, hypothesis: str) -> float:
    """Share of reference words found in the hypothesis (order-free, tolerant of tiny.en)."""
    ref, hyp = words(reference), set(words(hypothesis))
    return sum(w in hyp for w in ref) / len(ref)


def real_bridge(engine, tmp_path, **session) -> Bridge:
    return bridge_under_test(tmp_path, engine, shutdown_deadline_s=60, **session)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 240))


NAMES = ["agent-pass", "conf-onlyperson"]


def test_two_prompts_over_app_audiosocket_8k(real_engine, tmp_path):
    """What AudioSocket() sends: UUID, 320-byte slin frames, a DTMF digit, close."""
    async def scenario():
        async with real_bridge(real_engine, tmp_path) as bridge:
            client = await caller(bridge).connect()
            for name in NAMES:
                await client.send_audio(prompt(name).pcm + silence(PAUSE_S, 8000))
            await client.send_dtmf("#")
            await client.finish("close")
            assert await bridge.live.wait_ended(client.call_uuid, 120)
            text = bridge.storage.transcript_text(client.call_uuid)
            reference = " ".join(prompt(n).text for n in NAMES)
            assert recall(reference, text) >= 0.8, text
            finals = bridge.live.finals(client.call_uuid)
            assert [e.segment_index for e in finals] == sorted(e.segment_index for e in finals)
            assert bridge.storage.get_call(client.call_uuid).dtmf[0][1] == "#"
    run(scenario())


def test_slin16_channel_driver_and_raw_mode_give_the_same_words(real_engine, tmp_path):
    """chan_audiosocket with slin16 (kind 0x12, 640-byte frames) and bare raw 16 kHz."""
    pcm16 = resample_pcm(prompt("agent-pass").pcm + silence(PAUSE_S, 8000), 8000, 16000)

    async def framed():
        async with real_bridge(real_engine, tmp_path) as bridge:
            client = await caller(bridge).connect()
            await client.send_audio(pcm16, 16000)
            await client.finish("hangup")
            assert await bridge.live.wait_ended(client.call_uuid, 120)
            return bridge.storage.transcript_text(client.call_uuid)

    async def raw():
        async with real_bridge(real_engine, tmp_path, raw=True) as bridge:
            client = await caller(bridge).connect(send_uuid=False)
            for offset in range(0, len(pcm16), 640):
                await client.send_bytes(pcm16[offset:offset + 640])
            await client.close()
            call_uuid = await _generated_uuid(bridge)
            assert await bridge.live.wait_ended(call_uuid, 120)
            return bridge.storage.transcript_text(call_uuid)

    reference = prompt("agent-pass").text
    framed_text = run(framed())
    raw_text = run(raw())
    assert recall(reference, framed_text) >= 0.8, framed_text
    assert recall(reference, raw_text) >= 0.8, raw_text


async def _generated_uuid(bridge: Bridge) -> str:
    """Raw mode: the bridge made the UUID up; find it among the live calls."""
    for _ in range(200):
        calls = bridge.live.active()
        if calls:
            return calls[0].uuid
        await asyncio.sleep(0.01)
    raise AssertionError("raw call never started")


def test_ivr_mode_hangs_up_after_the_first_utterance(real_engine, tmp_path):
    async def scenario():
        async with real_bridge(real_engine, tmp_path, registration_wait_s=2) as bridge:
            client = caller(bridge)
            bridge.registrations.register(Registration(client.call_uuid, channel="PJSIP/ivr-1",
                                                       options=CallOptions(mode="ivr")))
            await client.connect()
            await client.send_audio(prompt("agent-pass").pcm + silence(3.0, 8000), realtime=True)
            assert await client.wait_server_end(30) and client.server_hangup
            assert await bridge.live.wait_ended(client.call_uuid, 60)
            assert bridge.live.get(client.call_uuid).end_reason == "ivr-final"
            assert "password" in bridge.storage.transcript_text(client.call_uuid).lower()
    run(scenario())
