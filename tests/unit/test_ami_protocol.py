"""Pure AMI encoding, chunking and registration parsing."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audiosocket_bridge.asterisk.ami_protocol import (AMI_MAX_LINE_BYTES, AmiLineTooLong, MessageFramer,
                                                      caption_event, encode_action, parse_header_lines,
                                                      registration_from_event)
from audiosocket_bridge.asterisk.variables import CallCaptionState, chunk_text, transcript_variables
from audiosocket_bridge.registrations import CallOptions
from tests.support.builders import CHANNEL_A, UUID_A, event


def _lines(payload: bytes) -> list[bytes]:
    return [line + b"\n" for line in payload.split(b"\n") if line]


def test_encode_strips_cr_lf_so_values_cannot_inject_headers_or_actions():
    payload = encode_action({"Action": "UserEvent", "Text": "hi\r\n\r\nAction: Originate"})
    assert payload.count(b"\r\n\r\n") == 1 and payload.endswith(b"\r\n\r\n")
    assert b"Text: hi    Action: Originate\r\n" in payload


def test_encode_refuses_a_line_asterisk_would_discard():
    with pytest.raises(AmiLineTooLong):
        encode_action({"Action": "Setvar", "Value": "x" * AMI_MAX_LINE_BYTES})


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=5000))
def test_chunks_fit_the_setvar_line_and_keep_every_word(text):
    parts = chunk_text(text)
    for part in parts:
        assert len(f"Value: {part}\r\n".encode()) <= AMI_MAX_LINE_BYTES
    assert "".join(parts).replace(" ", "") == "".join(text.split())


@given(st.lists(st.text(alphabet="abcdé€ ", min_size=1, max_size=400), min_size=2, max_size=12))
def test_appending_text_only_changes_the_last_chunks(utterances):
    before = chunk_text(" ".join(utterances[:-1]))
    after = chunk_text(" ".join(utterances))
    assert after[:max(0, len(before) - 1)] == before[:max(0, len(before) - 1)]


def test_final_setvars_resend_only_changed_parts_and_set_transcript_last():
    state = CallCaptionState()
    long_utterance = " ".join(["word"] * 300)  # ~1500 bytes: two parts
    first = state.final_setvars(CHANNEL_A, long_utterance)
    assert [a["Variable"] for a in first] == ["TRANSCRIPT_FULL_1", "TRANSCRIPT_FULL_2",
                                              "TRANSCRIPT_PARTS", "TRANSCRIPT_SEGMENTS", "TRANSCRIPT"]
    second = state.final_setvars(CHANNEL_A, "and more")
    assert [a["Variable"] for a in second] == ["TRANSCRIPT_FULL_2", "TRANSCRIPT_PARTS",
                                               "TRANSCRIPT_SEGMENTS", "TRANSCRIPT"]
    assert second[-1]["Value"] == "and more" and second[-2]["Value"] == "2"
    assert all(len(encode_action(a)) < 2 * AMI_MAX_LINE_BYTES for a in first + second)


def test_final_without_channel_is_remembered_and_sent_once_the_channel_is_known():
    state = CallCaptionState()
    assert state.final_setvars(None, "hello") == []
    actions = state.final_setvars(CHANNEL_A, "world")
    full = {a["Variable"]: a["Value"] for a in actions}
    assert full["TRANSCRIPT_FULL_1"] == "hello world" and full["TRANSCRIPT_SEGMENTS"] == "2"


def test_transcript_variables_all_at_once_for_the_agi_and_changes_only_for_ami():
    once = transcript_variables(["part one", "part two"], 3, "whole call")
    assert once == [("TRANSCRIPT_FULL_1", "part one"), ("TRANSCRIPT_FULL_2", "part two"),
                    ("TRANSCRIPT_PARTS", "2"), ("TRANSCRIPT_SEGMENTS", "3"),
                    ("TRANSCRIPT", "whole call")]
    assert transcript_variables([], 0, "") == [("TRANSCRIPT_PARTS", "0"), ("TRANSCRIPT_SEGMENTS", "0"),
                                               ("TRANSCRIPT", "")]
    changed = transcript_variables(["part one", "part two!"], 4, "!", previous_parts=["part one", "part two"])
    assert [name for name, _ in changed] == ["TRANSCRIPT_FULL_2", "TRANSCRIPT_PARTS",
                                             "TRANSCRIPT_SEGMENTS", "TRANSCRIPT"]
    same = transcript_variables(["part one"], 2, "", previous_parts=["part one"])
    assert [name for name, _ in same] == ["TRANSCRIPT_SEGMENTS", "TRANSCRIPT"]


def test_caption_event_headers():
    headers = caption_event(UUID_A, CHANNEL_A, event("final", 3, "Hello\nthere"), speaker="caller")
    assert headers == {"Action": "UserEvent", "UserEvent": "Transcript", "Uuid": UUID_A,
                       "Channel": CHANNEL_A, "Final": "1", "Segment": "3", "Start": "1.24",
                       "End": "2.50", "Language": "en", "Speaker": "caller", "Text": "Hello there"}


def test_caption_text_is_truncated_to_the_line_limit_on_a_character_boundary():
    headers = caption_event(UUID_A, CHANNEL_A, event("partial", 0, "€" * 1000))
    assert len(encode_action(headers).split(b"\r\n")[-3]) <= AMI_MAX_LINE_BYTES - 2
    assert headers["Text"] == "€" * len(headers["Text"])


def test_parse_collects_modern_and_legacy_chanvariable_headers():
    headers, data = parse_header_lines(["Event: UserEvent\r\n", "ChanVariable: A=1\r\n",
                                        "ChanVariable(PJSIP/a-1): B=x=y\r\n", "Uniqueid: 1.2\r\n"])
    assert headers == {"Event": "UserEvent", "ChanVariable": {"A": "1", "B": "x=y"},
                       "Uniqueid": "1.2"}
    assert data == ""


def test_registration_from_audiosocketstart_event():
    registration = registration_from_event({
        "Event": "UserEvent", "Channel": CHANNEL_A, "Uniqueid": "1718.1", "Linkedid": "1718.0",
        "UserEvent": "AudioSocketStart", "Uuid": UUID_A.upper(), "Language": "de",
        "Partials": "1", "Mode": "ivr", "Prompt": "Hallo Welt", "NoInputTimeout": "7.5",
        "ChanVariable": {"X": "1"}})
    assert registration.uuid == UUID_A and registration.channel == CHANNEL_A
    assert (registration.uniqueid, registration.linkedid) == ("1718.1", "1718.0")
    options = registration.options
    assert (options.language, options.partials, options.mode, options.prompt,
            options.no_input_timeout_s) == ("de", True, "ivr", "Hallo Welt", 7.5)


def test_other_user_events_are_ignored_and_bad_ones_rejected():
    assert registration_from_event({"Event": "UserEvent", "UserEvent": "Transcript"}) is None
    with pytest.raises(ValueError):
        registration_from_event({"UserEvent": "AudioSocketStart", "Uuid": "not-a-uuid"})
    with pytest.raises(ValueError):
        CallOptions.from_fields({"mode": "karaoke"})


def _frame(wire: str) -> list[list[str]]:
    framer = MessageFramer()
    messages = [framer.feed(line) for line in wire.splitlines(keepends=True)]
    return [m for m in messages if m is not None]


def test_framer_ends_every_message_at_an_empty_line_whatever_the_values_say():
    wire = ("Asterisk Call Manager/11.0.0\r\n"
            "Event: UserEvent\r\nUserEvent: Transcript\r\nText: status will follow\r\n\r\n"
            "Response: Success\r\nActionID: 2\r\nMessage: Variable Set\r\n\r\n"
            "Event: UserEvent\r\nResponse: Follows\r\nText: --END COMMAND--\r\n\r\n"
            "\r\nResponse: Success\r\nActionID: 3\r\n\r\n")
    banner, caption, setvar, odd, last = _frame(wire)
    assert banner == [MessageFramer.BANNER_HEADER, "Asterisk Call Manager/11.0.0\r\n"]
    assert caption[-1] == "Text: status will follow\r\n" and len(caption) == 3
    assert setvar[1] == "ActionID: 2\r\n" and len(odd) == 3 and last[1] == "ActionID: 3\r\n"


def test_framer_reads_a_status_listing_of_asterisk_22_as_one_message_per_entry():
    wire = ("Asterisk Call Manager/11.0.0\r\n"
            "Response: Success\r\nEventList: start\r\nMessage: Channel status will follow\r\n\r\n"
            "Event: Status\r\nChannel: PJSIP/a-1\r\n\r\n"
            "Event: StatusComplete\r\nEventList: Complete\r\nItems: 1\r\n\r\n")
    assert [m[0] for m in _frame(wire)[1:]] == ["Response: Success\r\n", "Event: Status\r\n",
                                                "Event: StatusComplete\r\n"]


def test_framer_keeps_old_command_output_whole_only_when_the_response_says_follows():
    wire = ("Asterisk Call Manager/1.1\r\n"
            "Response: Follows\r\nPrivilege: Command\r\nline one\n\nline three\n--END COMMAND--\r\n\r\n"
            "Response: Success\r\nPing: Pong\r\n\r\n")
    command, ping = _frame(wire)[1:]
    assert command[-1] == "--END COMMAND--\r\n" and "line three\n" in command
    assert ping == ["Response: Success\r\n", "Ping: Pong\r\n"]
