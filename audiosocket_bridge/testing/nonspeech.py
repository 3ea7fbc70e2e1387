"""Non-speech a telephone line carries: Asterisk's tones and effects, call-progress tones, DTMF,
fax, mains hum, line noise, hiss and synthetic music on hold (made with sox), as 8 kHz slin."""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List

from audiosocket_bridge.testing.prompts import SOUNDS_DIR, read_slin

ASTERISK_NON_SPEECH = ("beep", "beeperr", "ascending-2tone", "descending-2tone", "tt-monkeys", "silence/10")
DTMF_HZ = {"1": (697, 1209), "5": (770, 1336), "9": (852, 1477), "0": (941, 1336), "#": (941, 1477)}


def _tone(*freqs_hz: int, on_s: float, off_s: float = 0.0) -> List[str]:
    synth = ["synth", str(on_s)] + [part for hz in freqs_hz for part in ("sine", str(hz))]
    return synth + ["remix", "-", "gain", "-12", "pad", "0", str(off_s)]


SOX_RECIPES: Dict[str, List[List[str]]] = {
    "dial-tone": [_tone(350, 440, on_s=6)],
    "ringback": [_tone(440, 480, on_s=2, off_s=4)] * 2,
    "busy": [_tone(480, 620, on_s=0.5, off_s=0.5)] * 6,
    "fax-cng": [_tone(1100, on_s=0.5, off_s=3)] * 2,
    "dtmf": [_tone(*hz, on_s=0.12, off_s=0.12) for hz in DTMF_HZ.values()] * 2,
    "mains-hum": [_tone(50, 150, on_s=6)],  # a ground loop on an analogue line
    "line-noise": [["synth", "6", "pinknoise", "gain", "-35"]],
    "hiss": [["synth", "6", "whitenoise", "gain", "-45"]],
    "music-on-hold": [["synth", "0.4", "pluck", "C4", "pluck", "E4", "pluck", "G4", "remix", "-",
                       "gain", "-10"],
                      ["synth", "0.4", "pluck", "D4", "pluck", "F4", "pluck", "A4", "remix", "-",
                       "gain", "-10"],
                      ["synth", "0.8", "pluck", "E4", "pluck", "G4", "pluck", "C5", "remix", "-",
                       "gain", "-10"]] * 3,
}


def sox_sound(name: str) -> bytes:
    """One of SOX_RECIPES rendered by sox: the pieces one after another."""
    with tempfile.TemporaryDirectory() as folder:
        pieces = []
        for index, effects in enumerate(SOX_RECIPES[name]):
            piece = Path(folder) / f"{index}.wav"
            subprocess.run(["sox", "-n", "-b", "16", "-r", "8000", "-c", "1", str(piece), *effects],
                           check=True, capture_output=True)
            pieces.append(read_slin(piece))
        return b"".join(pieces)


def non_speech() -> Dict[str, bytes]:
    """Every non-speech sound, by name."""
    sounds = {name: read_slin(SOUNDS_DIR / f"{name}.wav") for name in ASTERISK_NON_SPEECH}
    sounds.update({name: sox_sound(name) for name in SOX_RECIPES})
    return sounds
