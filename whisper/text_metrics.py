"""Text statistics used to spot hallucinations."""
import zlib


def compression_ratio(text: str) -> float:
    """Raw length over zlib-compressed length: high (> 2.4) for repetitive, looping text."""
    raw = text.encode("utf-8")
    if not raw:
        return 0.0
    return len(raw) / len(zlib.compress(raw))
