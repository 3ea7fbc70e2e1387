"""AMI wire format and transcript-to-action mapping (pure: no sockets, no threads).

Asterisk reads AMI input into ``char inbuf[1025]`` (main/manager.c, get_input):
a line that has no CR/LF within 1024 bytes is discarded and the whole action
is answered with "Failed to parse message: line too long". So every line we
send, CR LF included, must fit in AMI_MAX_LINE_BYTES. Values are stripped of
CR/LF (they would otherwise end the header and inject new ones) and then
truncated or chunked on UTF-8 character boundaries.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Optional

from whisper.streaming.types import TranscriptEvent

from ..values import canonical_uuid
from ..registrations import CallOptions, Registration
from ..values import blank_to_none

AMI_MAX_LINE_BYTES = 1024  # including the trailing CR LF
EOL = "\r\n"

# Setvar's longest header is "Variable: TRANSCRIPT_FULL_NNN"; the value line is
# "Value: <text>", so the value budget is the line budget minus that prefix.
SETVAR_VALUE_MAX_BYTES = AMI_MAX_LINE_BYTES - len("Value: ") - len(EOL)

TRANSCRIPT_EVENT = "Transcript"
TRANSCRIPT_ALERT_EVENT = "TranscriptAlert"
TRANSCRIPT_END_EVENT = "TranscriptEnd"
START_EVENT = "AudioSocketStart"


class AmiLineTooLong(ValueError):
    """An action line would exceed AMI_MAX_LINE_BYTES and be discarded by Asterisk."""


# -- encoding ---------------------------------------------------------------

def clean_value(value: object) -> str:
    """One header value: CR/LF/TAB become spaces (a CR/LF would end the header early)."""
    text = str(value)
    for ch in "\r\n\t":
        text = text.replace(ch, " ")
    return text.strip()


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Longest prefix of `text` whose UTF-8 encoding fits in `max_bytes`."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", errors="ignore")


def header_line(key: str, value: object) -> str:
    return f"{key}: {clean_value(value)}{EOL}"


def encode_action(headers: Mapping[str, object]) -> bytes:
    """Serialise one action; list values repeat the header. Raises AmiLineTooLong."""
    lines = []
    for key, value in headers.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            line = header_line(key, item)
            if len(line.encode("utf-8")) > AMI_MAX_LINE_BYTES:
                raise AmiLineTooLong(f"AMI header {key!r} is {len(line.encode())} bytes "
                                     f"(limit {AMI_MAX_LINE_BYTES} incl. CR LF)")
            lines.append(line)
    return ("".join(lines) + EOL).encode("utf-8")


def redacted(headers: Mapping[str, object]) -> dict[str, object]:
    """For logging: never show a secret."""
    return {k: ("***" if k.lower() in ("secret", "key") else v) for k, v in headers.items()}


# -- decoding ---------------------------------------------------------------

def parse_header_lines(lines: Iterable[str]) -> tuple[dict, str]:
    """Headers of one received message, plus any trailing free-form data.

    `ChanVariable: name=value` (Asterisk 12+) and the older
    `ChanVariable(PJSIP/x-1): name=value` may repeat; they are collected into
    one dict under the key "ChanVariable".
    """
    headers: dict = {}
    lines = list(lines)
    for n, line in enumerate(lines):
        key, sep, value = line.partition(":")
        if not line.endswith(EOL) or not sep:
            return headers, "".join(lines[n:])
        key, value = key.strip(), value.strip()
        if key.startswith("ChanVariable"):
            name, _, var_value = value.partition("=")
            headers.setdefault("ChanVariable", {})[name.strip()] = var_value.strip()
        else:
            headers[key] = value
    return headers, ""


class MessageFramer:
    """Splits the lines Asterisk sends into messages (the banner, responses, events).

    Asterisk 12+ ends every response and every event with an empty line, and a
    list action (Status, ...) is answered with a response and then one event
    per entry, each ended the same way. So an empty line always ends a message,
    with one exception kept for Asterisk before 14: "Response: Follows" (Command
    output) runs to "--END COMMAND--" and may hold empty lines. It is honoured
    only as a message's first line, which no event can forge (events start
    with "Event:"). Unlike pyst2's reader, nothing in a header *value* changes
    the framing: a caption "our status will follow" is just text.
    """

    BANNER_HEADER = "Response: Generated Header\r\n"  # pyst2's stand-in header for the banner

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._expect_banner = True
        self._until_end_command = False

    def feed(self, line: str) -> Optional[list[str]]:
        """One received line (terminator included); returns a message once one is complete."""
        if self._expect_banner:
            self._expect_banner = False
            if "/" in line and ":" not in line:  # "Asterisk Call Manager/11.0.0"
                return [self.BANNER_HEADER, line]
        if line.strip("\r\n") == "" and not self._until_end_command:
            message, self._lines = self._lines, []
            return message or None
        self._lines.append(line)
        if len(self._lines) == 1 and _header(line) == ("response", "Follows"):
            self._until_end_command = True
        elif self._until_end_command and line.rstrip().endswith("--END COMMAND--"):
            self._until_end_command = False
        return None


def _header(line: str) -> tuple[str, str]:
    key, _, value = line.partition(":")
    return key.strip().lower(), value.strip()


# -- transcript -> actions --------------------------------------------------

def seconds_text(seconds: float) -> str:
    return f"{seconds:.2f}"


def setvar(channel: str, variable: str, value: object) -> dict[str, str]:
    text = truncate_utf8(clean_value(value), SETVAR_VALUE_MAX_BYTES)
    return {"Action": "Setvar", "Channel": channel, "Variable": variable, "Value": text}


def caption_event(uuid: str, channel: Optional[str], event: TranscriptEvent,
                  speaker: Optional[str] = None) -> dict[str, str]:
    """`UserEvent: Transcript` action for one partial or final."""
    headers = {
        "Action": "UserEvent",
        "UserEvent": TRANSCRIPT_EVENT,
        "Uuid": uuid,
        "Channel": channel or "",
        "Final": "1" if event.is_final else "0",
        "Segment": str(event.segment_index),
        "Start": seconds_text(event.start_s),
        "End": seconds_text(event.end_s),
        "Language": event.language or "",
    }
    if speaker:
        headers["Speaker"] = speaker
    budget = AMI_MAX_LINE_BYTES - len("Text: ") - len(EOL)
    headers["Text"] = truncate_utf8(clean_value(event.text), budget)
    return headers


def end_event(uuid: str, channel: Optional[str], segments: int, reason: Optional[str]) -> dict:
    return {"Action": "UserEvent", "UserEvent": TRANSCRIPT_END_EVENT, "Uuid": uuid,
            "Channel": channel or "", "Segments": str(segments), "Reason": reason or ""}


def alert_event(uuid: str, channel: Optional[str], alert, speaker: Optional[str] = None) -> dict:
    """`UserEvent: TranscriptAlert` for one phrase alert (outputs/alerts.py)."""
    headers = {"Action": "UserEvent", "UserEvent": TRANSCRIPT_ALERT_EVENT, "Uuid": uuid,
               "Channel": channel or "", "Segment": str(alert.segment),
               "Start": seconds_text(alert.start_s), "End": seconds_text(alert.end_s),
               "Rule": truncate_utf8(clean_value(alert.rule), 256),
               "Matched": truncate_utf8(clean_value(alert.matched), 256)}
    if speaker:
        headers["Speaker"] = speaker
    budget = AMI_MAX_LINE_BYTES - len("Text: ") - len(EOL)
    headers["Text"] = truncate_utf8(clean_value(alert.text), budget)
    return headers


# -- AudioSocketStart UserEvent -> Registration ------------------------------

def registration_from_event(headers: Mapping[str, object]) -> Optional[Registration]:
    """Registration from an `Event: UserEvent` / `UserEvent: AudioSocketStart` message.

    Returns None for other events. Raises ValueError for a malformed one.
    The channel snapshot (Channel, Uniqueid, Linkedid) comes from the channel
    that ran UserEvent() in the dialplan.
    """
    fields = {k.lower(): str(v) for k, v in headers.items() if isinstance(v, str)}
    if fields.get("userevent", "").lower() != START_EVENT.lower():
        return None
    return Registration(uuid=canonical_uuid(fields.get("uuid", "")),
                        channel=blank_to_none(fields.get("channel")),
                        uniqueid=blank_to_none(fields.get("uniqueid")),
                        linkedid=blank_to_none(fields.get("linkedid")),
                        options=CallOptions.from_fields(fields))
