"""Parsing option values written by people: dialplan headers, AGI arguments, env vars, INI files."""
from __future__ import annotations

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
