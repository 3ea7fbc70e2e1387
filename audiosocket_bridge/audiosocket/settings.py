"""What the administrator sets for every AudioSocket connection (from config.BridgeConfig)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class SessionSettings:
    max_frame_bytes: int = 32768  # --max-frame-bytes
    idle_timeout_s: float = 30.0  # --idle-timeout
    raw: bool = False  # --raw: bare 16 kHz slin, no AudioSocket framing
    language: Optional[str] = None  # --language; a call's own Language wins
    partials: bool = True  # --partials; a call's own Partials wins
    vocabulary: Optional[str] = None  # --vocabulary; a call's own Vocabulary wins
    registration_wait_s: float = 0.0  # --registration-wait, when AMI is on
    # --keepalive: app_audiosocket hangs the channel up after 2 s without media either way (a
    # ChanSpy leg nobody talks on, hold, silence suppression); 20 ms of silence back to Asterisk
    # whenever it has sent nothing for this long keeps the call up. 0 turns it off.
    keepalive_s: float = 0.5
    # --shutdown-deadline: how long the calls in progress may take to flush their last words
    shutdown_deadline_s: float = 30.0
    redact: str = "pci"  # --redact: redaction.py policy; a call's own Redact wins
    handshake_timeout_s: float = 5.0  # --handshake-timeout: the UUID message must come by then
