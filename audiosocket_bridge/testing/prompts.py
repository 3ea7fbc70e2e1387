"""Real telephone speech for tests and benchmarks: Debian's Asterisk English prompts and their texts."""
from __future__ import annotations

import gzip
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np

SOUNDS_DIR = Path("/usr/share/asterisk/sounds/en")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


@dataclass(frozen=True)
class Prompt:
    name: str  # e.g. "agent-pass" or "digits/1"
    path: Path
    text: str  # the reference transcript

    @property
    def pcm(self) -> bytes:
        """The prompt as Asterisk streams it: 8 kHz 16-bit mono signed linear."""
        return read_slin(self.path)


def read_slin(path: Path, rate_hz: int = 8000) -> bytes:
    """The raw samples of a 16-bit mono WAV file at ``rate_hz`` (asserted)."""
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (rate_hz, 2, 1), path
        return wav.readframes(wav.getnframes())


def resample_pcm(pcm: bytes, from_hz: int, to_hz: int) -> bytes:
    """Linear interpolation; enough to offer the prompts as slin16 etc."""
    if from_hz == to_hz:
        return pcm
    samples = np.frombuffer(pcm, "<i2").astype(np.float32)
    positions = np.arange(int(len(samples) * to_hz / from_hz)) * from_hz / to_hz
    return np.interp(positions, np.arange(len(samples)), samples).astype("<i2").tobytes()


def _references(transcripts: Path) -> Dict[str, str]:
    refs = {}
    with gzip.open(transcripts, "rt", encoding="utf-8-sig", errors="replace") as lines:
        for line in lines:
            if line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            refs[name.strip()] = text.strip()
    return refs


def english_prompts() -> List[Prompt]:
    """Every English prompt with a WAV file and a plain spoken reference."""
    return language_prompts("en")


# The voice of each asterisk-core-sounds-LANGUAGE-wav. sounds/LANGUAGE is only an alternatives link,
# which another voice's package (asterisk-prompt-it-menardi, ...) takes over without these transcripts.
CORE_VOICES = {"es": "es_MX_f_Allison", "fr": "fr_CA_f_June", "it": "it_IT_m_Carlo", "ru": "ru_RU_f_IvrvoiceRU"}


def language_prompts(language: str) -> List[Prompt]:
    """Every prompt of Debian's asterisk-core-sounds-LANGUAGE(-wav) with a WAV file and a plain
    spoken reference.

    References with brackets are left out: they describe tones ("[beep]") or spell symbols
    ("dash [-]"), which no transcript writes the same way.
    """
    sounds = SOUNDS_DIR.parent / CORE_VOICES.get(language, language)
    if not sounds.is_dir():
        sounds = SOUNDS_DIR.parent / language
    transcripts = TRANSCRIPTS.parent.parent / f"asterisk-core-sounds-{language}" / f"core-sounds-{language}.txt.gz"
    prompts = []
    for name, text in sorted(_references(transcripts).items()):
        path = sounds / f"{name}.wav"
        if text and "[" not in text and path.exists():
            prompts.append(Prompt(name, path, text))
    return prompts


def prompt(name: str) -> Prompt:
    for candidate in english_prompts():
        if candidate.name == name:
            return candidate
    raise KeyError(name)
