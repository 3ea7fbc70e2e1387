"""Builders shared by the AMI/AGI tests: calls, transcript events, waiting."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable, Optional

from whisper.stream_types import TranscriptEvent

from audiosocket_bridge.registrations import CallOptions, Registration
from audiosocket_bridge.outputs.sinks import CallInfo

UUID_A = "0f8fad5b-d9cb-469f-a165-70867728950e"
UUID_B = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
CHANNEL_A = "PJSIP/alice-00000001"
CHANNEL_B = "PJSIP/bob-00000002"


def call_info(uuid: str = UUID_A, channel: Optional[str] = CHANNEL_A,
              options: CallOptions = CallOptions()) -> CallInfo:
    return CallInfo(uuid=uuid, peer="127.0.0.1:40000", started_at=datetime.now(timezone.utc),
                    sample_rate_hz=8000,
                    registration=Registration(uuid=uuid, channel=channel, options=options))


def event(kind: str, index: int, text: str, uuid: str = UUID_A,
          start_s: float = 1.24, end_s: float = 2.5) -> TranscriptEvent:
    return TranscriptEvent(stream_id=uuid, kind=kind, segment_index=index, text=text,
                           start_s=start_s, end_s=end_s, language="en", avg_logprob=-0.2,
                           no_speech_prob=0.01)


def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
