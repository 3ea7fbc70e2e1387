"""The caption page in a real browser (headless Debian chromium through Selenium): a live call's
partials and finals drawn within a second of the bridge emitting them, an alert phrase highlighted
(and sent to AMI), search over stored calls by a spoken word, a two-leg conversation shown
interleaved with speaker labels and exported as one, a page without the token let in to
nothing, and a page whose stream drops mid-call showing every final once after it reconnects.
Screenshots are left in the test's folder (and the live one in the notes folder)."""
import asyncio
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from audiosocket_bridge.asterisk.ami_sink import AmiConfig
from audiosocket_bridge.outputs.alerts import parse_rules
from audiosocket_bridge.outputs.http_auth import HttpAccess
from audiosocket_bridge.registrations import CallOptions, Registration
from tests.support.bridges import bridge_under_test, caller
from tests.support.browser import WATCH_LINES, Emitted, LoopThread, chromium, wait_until
from tests.support.caption_stream import TOKEN
from audiosocket_bridge.testing.fake_ami import FakeAmi, transcriber
from audiosocket_bridge.testing.prompts import prompt
from whisper.streaming.sim import silence

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyst2's threads
NOTES = Path("/work/wt/notes")  # where the lead looks at the screenshots (when it exists)
SHOWN_WITHIN_S = 1.0


def _page_url(bridge, token=TOKEN) -> str:
    host, port = bridge.metrics_server.address
    return f"http://{host}:{port}/" + (f"#token={token}" if token else "")


def _css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def _drawn_after(seen: list[dict], emitted: list[tuple[float, dict]], kind: str) -> list[float]:
    """For each message of `kind` the bridge emitted: seconds until the page first showed that
    text as that kind."""
    delays = []
    for at, message in emitted:
        shown = [s["t"] for s in seen if s["kind"] == kind and s["call"] == message["call"]
                 and s["segment"] == message["segment"] and s["text"] == message["text"]]
        assert shown, f"the page never showed the {kind} {message['segment']}: {message['text']!r}"
        delays.append(min(shown) - at)
    return delays


def test_a_live_call_alert_and_search_on_the_page(real_engine, tmp_path):
    ami = FakeAmi({"transcriber": transcriber("s3cret")})
    ami.start()
    ami_config = AmiConfig(port=ami.port, secret="s3cret", backoff_initial_s=0.05)
    bridge = bridge_under_test(tmp_path, real_engine, metrics=True, http_access=HttpAccess(token=TOKEN),
                               ami=ami_config, alerts=parse_rules(["password"]),
                               shutdown_deadline_s=60, registration_wait_s=0.2)
    audio = prompt("agent-pass").pcm + silence(1.5, 8000) + prompt("conf-onlyperson").pcm + silence(1.5, 8000)

    async def call() -> str:
        client = await caller(bridge).connect()
        await client.send_audio(audio, realtime=True)
        await client.finish("hangup")
        assert await bridge.live.wait_ended(client.call_uuid, 120)
        return client.call_uuid

    with LoopThread() as loop, chromium(tmp_path) as driver:
        loop.run(bridge.start())
        try:
            emitted = Emitted(bridge.captions)
            loop.start(emitted.collect())
            driver.get(_page_url(bridge))
            wait_until(lambda: driver.find_element("id", "status").text == "live", what="the stream")
            driver.execute_script(WATCH_LINES)
            calling = loop.start(call())
            _screenshot_a_partial(driver, calling, tmp_path / "captions-partial.png")
            uuid = calling.result(180)
            wait_until(lambda: _css(driver, "#live .conversation.ended"), what="the call shown ended")
            seen = driver.execute_script("return window.__seen")
            partials, finals = emitted.of("partial"), emitted.of("final")
            assert partials and finals
            assert max(_drawn_after(seen, partials, "partial")) < SHOWN_WITHIN_S
            assert max(_drawn_after(seen, finals, "final")) < SHOWN_WITHIN_S
            lines = [line.text for line in _css(driver, "#live .line")]
            assert len(lines) == len(finals) and all(".partial" not in line for line in lines)
            highlighted = _css(driver, "#live .line.alert")
            assert len(highlighted) == 1 and "password" in highlighted[0].text.lower()
            assert "alert: password" in highlighted[0].text
            assert "password" in driver.find_element("id", "alerts").text.lower()
            driver.save_screenshot(str(tmp_path / "captions-live.png"))
            assert ami.wait_for(lambda f: any(a.get("UserEvent") == "TranscriptAlert"
                                              and a.get("Uuid") == uuid and a.get("Rule") == "password"
                                              for a in f.named("UserEvent")))

            driver.find_element("id", "search-q").send_keys("password")
            driver.find_element("id", "search-go").click()
            hit = wait_until(lambda: _css(driver, "#results .hit"), what="a search hit")[0]
            assert "password" in hit.text.lower()
            hit.click()
            wait_until(lambda: _css(driver, "#transcript .line"), what="the stored transcript")
            assert _css(driver, "#transcript .line.alert")
            links = {a.text: a.get_attribute("href") for a in _css(driver, "#exports a.export")}
            assert sorted(links) == ["JSON", "SRT", "TXT", "VTT"]
            with urllib.request.urlopen(links["SRT"], timeout=10) as response:
                assert "password" in response.read().decode().lower()
            driver.save_screenshot(str(tmp_path / "captions-stored.png"))
            _copy_to_notes(tmp_path / "captions-stored.png", "captions.png")
            _copy_to_notes(tmp_path / "captions-partial.png", "captions-partial.png")
        finally:
            loop.run(bridge.close(), 120)
            ami.stop()


def test_a_two_leg_conversation_is_shown_interleaved_and_exported_as_one(tmp_path):
    bridge = bridge_under_test(tmp_path, metrics=True, http_access=HttpAccess(token=TOKEN))

    async def legs() -> None:
        agent, customer = caller(bridge), caller(bridge)
        for client, speaker in ((agent, "agent"), (customer, "customer")):
            bridge.registrations.register(Registration(
                client.call_uuid, f"PJSIP/{speaker}-1",
                options=CallOptions(speaker=speaker, conversation="1764579600.42")))
        await agent.connect()
        await asyncio.sleep(0.5)
        await customer.connect()
        await asyncio.gather(agent.send_silence(2.2, realtime=True),
                             customer.send_silence(2.2, realtime=True))
        for client in (agent, customer):
            await client.finish("hangup")
            assert await bridge.live.wait_ended(client.call_uuid, 10)

    with LoopThread() as loop, chromium(tmp_path) as driver:
        loop.run(bridge.start())
        try:
            driver.get(_page_url(bridge, token=None))
            wait_until(lambda: driver.find_element("id", "login").is_displayed(), what="the login form")
            assert driver.find_element("id", "status").text == "token needed"
            assert not _css(driver, "#recent li")

            driver.get(_page_url(bridge))
            driver.refresh()  # the token is kept for the tab, and the URL no longer shows it
            wait_until(lambda: driver.find_element("id", "status").text == "live", what="the stream")
            assert "token" not in driver.current_url
            loop.run(legs())
            cards = wait_until(lambda: _css(driver, "#live .conversation.ended"), what="the ended conversation")
            assert len(cards) == 1 and "agent / customer" in cards[0].text
            speakers = [line.find_element("css selector", ".who").text for line in _css(driver, "#live .line")]
            assert speakers == ["agent", "customer", "agent", "customer", "agent", "customer"]

            wait_until(lambda: len(_css(driver, "#recent li")) == 2, what="the stored legs")
            _css(driver, "#recent li")[0].click()
            link = wait_until(lambda: _css(driver, "#exports .conversation-link"), what="the link")[0]
            link.click()
            wait_until(lambda: "Conversation 1764579600.42" in driver.find_element("id", "stored-title").text,
                       what="the conversation view")
            stored = [line.find_element("css selector", ".who").text for line in _css(driver, "#transcript .line")]
            assert stored == speakers
            srt_link = {a.text: a.get_attribute("href") for a in _css(driver, "#exports a.export")}["SRT"]
            with urllib.request.urlopen(srt_link, timeout=10) as response:
                srt = response.read().decode()
            assert [line.split(":")[0] for line in srt.splitlines() if ": segment" in line] == speakers
            driver.save_screenshot(str(tmp_path / "captions-conversation.png"))
        finally:
            loop.run(bridge.close(), 60)


def test_the_page_reconnects_and_shows_every_final_once(tmp_path):
    bridge = bridge_under_test(tmp_path, metrics=True, http_access=HttpAccess(token=TOKEN))

    async def call() -> str:
        client = await caller(bridge).connect()
        await client.send_silence(5.0, realtime=True)  # the fake engine: a final each second
        await client.finish("hangup")
        assert await bridge.live.wait_ended(client.call_uuid, 10)
        return client.call_uuid

    with LoopThread() as loop, chromium(tmp_path) as driver:
        loop.run(bridge.start())
        try:
            driver.get(_page_url(bridge))
            wait_until(lambda: driver.find_element("id", "status").text == "live", what="the stream")
            calling = loop.start(call())
            wait_until(lambda: _css(driver, "#live .line.final"), what="a first final")
            loop.loop.call_soon_threadsafe(bridge.captions.shutdown, "cut")  # every stream drops
            wait_until(lambda: driver.find_element("id", "status").text == "reconnecting",
                       what="the page noticing")
            uuid = calling.result(60)
            wait_until(lambda: _css(driver, "#live .conversation.ended"), what="the call's end")
            stored = len(bridge.storage.get_segments(uuid))
            segments = [int(line.get_attribute("data-segment")) for line in _css(driver, "#live .line.final")]
            assert stored >= 5 and segments == list(range(stored))  # none missed while away, none twice
        finally:
            loop.run(bridge.close(), 60)


def _screenshot_a_partial(driver, calling, shot: Path) -> None:
    """The page while a partial is on it (as the call goes on: no assertion, the observer's
    record is what the test checks)."""
    while not calling.done():
        if _css(driver, "#live .line.partial"):
            driver.save_screenshot(str(shot))
            return
        time.sleep(0.05)


def _copy_to_notes(shot: Path, name: str) -> None:
    if NOTES.is_dir() and shot.exists():
        shutil.copyfile(shot, NOTES / name)
