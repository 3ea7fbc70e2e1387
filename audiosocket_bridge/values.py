"""Parsing values written by people or peers: dialplan headers, AGI arguments, env vars, INI files,
addresses and call UUIDs. The bottom layer: every part of the bridge may import it; it imports none.
"""
from __future__ import annotations

import uuid as uuid_lib
from typing import Optional

_TRUE = {"1", "yes", "true", "on", "y"}
_FALSE = {"0", "no", "false", "off", "n"}


def parse_bool(text: Optional[str]) -> Optional[bool]:
    """True/False for the usual spellings (1/0, yes/no, on/off); None for no value."""
    if text is None or not text.strip():
        return None
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def blank_to_none(text: Optional[str]) -> Optional[str]:
    """The text stripped, or None when there is none."""
    return text.strip() if text and text.strip() else None


def parse_float(text: Optional[str]) -> Optional[float]:
    return float(text) if text is not None and text.strip() else None


def canonical_uuid(text: str) -> str:
    """Lower-case 8-4-4-4-12 form; raises ValueError if `text` is not a UUID."""
    return str(uuid_lib.UUID(text.strip()))


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """'host:port', ':port', 'host', '[v6]:port', '[v6]' or a bare IPv6 address ('::1')."""
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port or (host.count(":") and not host.startswith("[")):
        return text.strip("[]"), default_port  # no port, or an IPv6 address without brackets
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid address {text!r}: the port must be 1-65535 (IPv6 with a port: [::1]:8300)")
    return (host.strip("[]") or "127.0.0.1"), int(port)
