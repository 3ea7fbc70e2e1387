"""Builders shared by the sink, storage, AMI and AGI tests: calls, transcript events, a stored
call, and waiting for a condition."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable, Optional, Sequence

from whisper.streaming.types import TranscriptEvent

from audiosocket_bridge.outputs.sinks import CallInfo
from audiosocket_bridge.registrations import CallOptions, Registration

UUID_A = "0f8fad5b-d9cb-469f-a165-70867728950e"
UUID_B = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
CHANNEL_A = "PJSIP/alice-00000001"
CHANNEL_B = "PJSIP/bob-00000002"
STORED_CALL = "40325ec2-5efd-4bd3-805f-53576e581d13"
STORED_CALL_STARTED_AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def call_info(uuid: str = UUID_A, channel: Optional[str] = CHANNEL_A,
              options: CallOptions = CallOptions(), *, started_at: Optional[datetime] = None,
              dtmf: Sequence[tuple[float, str]] = ()) -> CallInfo:
    return CallInfo(uuid=uuid, peer="127.0.0.1:40000",
                    started_at=started_at or datetime.now(timezone.utc), sample_rate_hz=8000,
                    registration=Registration(uuid=uuid, channel=channel, options=options),
                    dtmf=list(dtmf))


def event(kind: str, index: int, text: str, uuid: str = UUID_A,
          start_s: float = 1.24, end_s: float = 2.5) -> TranscriptEvent:
    return TranscriptEvent(stream_id=uuid, kind=kind, segment_index=index, text=text,
                           start_s=start_s, end_s=end_s, language="en", avg_logprob=-0.2,
                           no_speech_prob=0.01)


def stored_call() -> CallInfo:
    """The call that fill_storage() stores (and a test process may store again)."""
    return call_info(STORED_CALL, started_at=STORED_CALL_STARTED_AT, dtmf=[(1.5, "4")])


def stored_final(index: int, text: str, start_s: float, end_s: float) -> TranscriptEvent:
    return event("final", index, text, STORED_CALL, start_s, end_s)


def fill_storage(storage) -> CallInfo:
    """STORED_CALL with two finals (one over an hour in) and a repeated final, ended by hangup."""
    call = stored_call()
    storage.record_call_start(call)
    storage.record_final(call, stored_final(0, " Hello there.", 0.5, 1.75))
    storage.record_final(call, stored_final(1, " Goodbye.", 3661.2, 3662.0))
    storage.record_final(call, stored_final(1, " (a repeated final is ignored)", 0, 1))
    call.ended_at = datetime(2024, 5, 1, 13, 1, 3, tzinfo=timezone.utc)
    call.end_reason = "hangup"
    storage.record_call_end(call)
    return call


def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def resolved_config(argv, environ, tmp_path=None, file_text=None):
    """The bridge's settings from these flags and environment, and an INI file of this text."""
    from audiosocket_bridge import cli

    if file_text is not None:
        path = tmp_path / "bridge.ini"
        path.write_text(file_text)
        argv = [*argv, "--config", str(path)]
    return cli.load_config(cli.build_parser().parse_args(argv), environ)
