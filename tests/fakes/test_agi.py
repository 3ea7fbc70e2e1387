"""FastAGI server: transcript and register scripts, spoken to as Asterisk does."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from audiosocket_bridge.asterisk.agi_protocol import (AGI_MAX_COMMAND_BYTES, parse_query,
                                                      parse_request, parse_response, set_variable)
from audiosocket_bridge.bridge import Bridge
from tests.support.bridges import ANY_LOOPBACK_PORT
from tests.support.builders import CHANNEL_A, UUID_A, UUID_B, call_info, event
from tests.support.fake_agi_client import parse_args, run_agi
from tests.support.fake_engine import FakeEngine


async def agi(bridge: Bridge, url: str, **kwargs):
    """A FastAGI request as Asterisk makes it; PORT in `url` is the bridge's FastAGI port."""
    port = bridge.agi_server.port
    return await run_agi("127.0.0.1", port, url.replace("PORT", str(port)), **kwargs)


async def feed_call(bridge: Bridge, uuid: str, texts: list[str], end: bool = True):
    """A call's start and finals through the bridge's sinks, in their order (LiveCalls last)."""
    call = call_info(uuid)
    await bridge.sinks.call_started(call)
    for index, text in enumerate(texts):
        await bridge.sinks.transcript(call, event("final", index, text, uuid=uuid))
    if end:
        await end_call(bridge, call)
    return call


async def end_call(bridge: Bridge, call) -> None:
    call.ended_at, call.end_reason = datetime.now(timezone.utc), "ivr-final"
    await bridge.sinks.call_ended(call)


def _run(scenario):
    async def main():
        async with Bridge(FakeEngine(), storage_url="sqlite:///:memory:", listen=ANY_LOOPBACK_PORT,
                          agi_listen=ANY_LOOPBACK_PORT) as bridge:
            return await scenario(bridge)
    return asyncio.run(main())


def test_transcript_of_a_finished_call():
    async def scenario(bridge):
        await feed_call(bridge, UUID_A, ["I want to talk to sales.", 'Say "now"\\please'])
        return await agi(bridge, f"agi://127.0.0.1:PORT/transcript?uuid={UUID_A}")

    result = _run(scenario)
    assert result.variables["TRANSCRIPT_STATUS"] == "OK"
    assert result.variables["TRANSCRIPT"] == 'I want to talk to sales. Say "now"\\please'
    assert result.variables["TRANSCRIPT_SEGMENTS"] == "2"
    assert result.variables["TRANSCRIPT_PARTS"] == "1"
    assert result.variables["TRANSCRIPT_FULL_1"] == result.variables["TRANSCRIPT"]
    assert result.commands[-1].startswith('SET VARIABLE "TRANSCRIPT_STATUS"')


def test_transcript_waits_for_a_call_that_is_ending():
    async def scenario(bridge):
        call = await feed_call(bridge, UUID_A, ["first"], end=False)

        async def last_final_then_end():
            await asyncio.sleep(0.3)
            await bridge.sinks.transcript(call, event("final", 1, "second"))
            await end_call(bridge, call)

        ending = asyncio.create_task(last_final_then_end())
        result = await agi(bridge, f"agi://127.0.0.1:PORT/transcript?uuid={UUID_A}")
        await ending
        return result

    result = _run(scenario)
    assert (result.variables["TRANSCRIPT_STATUS"], result.variables["TRANSCRIPT"]) == (
        "OK", "first second")


def test_transcript_pending_and_notfound():
    async def scenario(bridge):
        await feed_call(bridge, UUID_A, ["so far"], end=False)
        pending = await agi(bridge, f"agi://127.0.0.1:PORT/transcript?uuid={UUID_A}&wait=0.2")
        missing = await agi(bridge, f"agi://127.0.0.1:PORT/transcript?uuid={UUID_B}")
        garbage = await agi(bridge, "agi://127.0.0.1:PORT/transcript?uuid=nope")
        return pending, missing, garbage

    pending, missing, garbage = _run(scenario)
    assert (pending.variables["TRANSCRIPT_STATUS"], pending.variables["TRANSCRIPT"]) == (
        "PENDING", "so far")
    assert (missing.variables["TRANSCRIPT_STATUS"], missing.variables["TRANSCRIPT"]) == ("NOTFOUND", "")
    assert garbage.variables["TRANSCRIPT_STATUS"] == "NOTFOUND"


def test_transcript_works_after_hangup_and_long_text_fits_agi_lines():
    words = " ".join(f"word{n}" for n in range(800))  # ~6.5 KB

    async def scenario(bridge):
        await feed_call(bridge, UUID_A, [words])
        return await agi(bridge, f"agi://127.0.0.1:PORT/transcript?uuid={UUID_A}", hangup_first=True)

    result = _run(scenario)
    parts = int(result.variables["TRANSCRIPT_PARTS"])
    assert " ".join(result.variables[f"TRANSCRIPT_FULL_{i}"] for i in range(1, parts + 1)) == words
    assert words.startswith(result.variables["TRANSCRIPT"]) and result.too_long == 0
    assert result.variables["TRANSCRIPT_STATUS"] == "OK"


def test_register_sets_channel_and_options_before_audiosocket():
    async def scenario(bridge):
        result = await agi(bridge, f"agi://127.0.0.1:PORT/register?uuid={UUID_A.upper()}"
                                   "&language=de&partials=0&mode=ivr&no_input_timeout=6",
                           args=("prompt=Hallo, Kundenservice",), linkedid="1718.0")
        return result, bridge.registrations.get(UUID_A)

    result, registration = _run(scenario)
    assert result.variables["AUDIOSOCKET_REGISTER"] == "OK"
    assert (registration.channel, registration.uniqueid, registration.linkedid) == (
        CHANNEL_A, "1718000000.1", "1718.0")
    options = registration.options
    assert (options.language, options.partials, options.mode, options.no_input_timeout_s,
            options.prompt) == ("de", False, "ivr", 6.0, "Hallo, Kundenservice")


def test_register_rejects_bad_parameters():
    async def scenario(bridge):
        return await agi(bridge, f"agi://127.0.0.1:PORT/register?uuid={UUID_A}&mode=karaoke")

    assert _run(scenario).variables["AUDIOSOCKET_REGISTER"] == "ERROR"


@pytest.mark.parametrize("value", ['plain', 'with "quotes"', "back\\slash", "new\nline", ""])
def test_set_variable_quoting_survives_asterisks_argument_parser(value):
    args = parse_args(set_variable("TRANSCRIPT", value).decode().rstrip("\n"))
    assert args == ["SET", "VARIABLE", "TRANSCRIPT", value.replace("\n", " ")]


def test_set_variable_truncates_to_the_agi_buffer():
    value = '"\\é' * 2000
    line = set_variable("TRANSCRIPT", value)
    assert len(line) <= AGI_MAX_COMMAND_BYTES
    sent = parse_args(line.decode().rstrip("\n"))[3]
    assert len(sent) > 1000 and value.startswith(sent)


def test_request_and_response_parsing():
    request = parse_request({"agi_network_script": "Transcript?uuid=abc&wait=1",
                             "agi_arg_1": "prompt=a, b", "agi_arg_2": "junk"})
    assert (request.script, request.params) == ("transcript", {"uuid": "abc", "wait": "1",
                                                               "prompt": "a, b"})
    response = parse_response("200 result=1 (PJSIP/a-1)")
    assert (response.code, response.result, response.data) == (200, 1, "PJSIP/a-1")
    assert parse_response("511 Command Not Permitted on a dead channel").code == 511


@pytest.mark.parametrize("query, prompt", [
    ("prompt=C++%20support", "C++ support"),  # "+" is a plus; %20 is a space
    ("prompt=a+b", "a+b"),
    ("prompt=Q%26A%3Dfun", "Q&A=fun"),  # an escaped "&" or "=" does not split
    ("prompt=100%25+sure%2C+really", "100%+sure,+really"),
    ("prompt=caf%C3%A9", "café"),
    ("prompt=x=y", "x=y"),  # only the first "=" separates
])
def test_query_keeps_plus_and_decodes_percent_escapes(query, prompt):
    request = parse_request({"agi_network_script": f"transcript?uuid=abc&{query}"})
    assert request.params == {"uuid": "abc", "prompt": prompt}


def test_query_pairs_without_value_and_empty_pairs():
    assert parse_query("a&&b=&c=1&") == {"a": "", "b": "", "c": "1"}
    assert parse_query("") == {}


def test_agi_module_does_not_import_pyst2_fastagi():
    import importlib
    import sys

    importlib.import_module("audiosocket_bridge.asterisk.agi_server")
    assert "asterisk.fastagi" not in sys.modules  # it imports the Python 2 SocketServer
