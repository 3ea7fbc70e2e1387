"""Spoken digits by several voices: the Asterisk core voices the tests install (en, es, fr, it, ru),
held-out real speakers from other Debian prompt packages, which no test or tuning here used, and
espeak-ng's synthetic voices (``espeak:en-us``, ``espeak:en-gb+f3``, ...: English by other
"speakers" than Asterisk's, though synthetic).

The held-out packages are fetched once with ``apt-get download`` and unpacked into a cache, never
installed: installed, they would take over ``sounds/LANGUAGE`` from the core voices.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, NamedTuple

from audiosocket_bridge.testing.prompts import language_prompts

CACHE_DIR = Path.home() / ".cache" / "asterisk-whisper-bridge" / "voices"
RATE_HZ = 8000


class HeldOutVoice(NamedTuple):
    package: str
    language: str
    digits_dir: str  # inside the package
    extension: str


HELD_OUT = {
    "es-co": HeldOutVoice("asterisk-prompt-es-co", "es", "usr/share/asterisk/sounds/es/digits", "gsm"),
    "fr-armelle": HeldOutVoice("asterisk-prompt-fr-armelle", "fr", "usr/share/asterisk/sounds/fr/digits", "gsm"),
    "it-menardi": HeldOutVoice("asterisk-prompt-it-menardi-wav", "it",
                               "usr/share/asterisk/sounds/it_IT_f_Menardi/digits", "wav"),
}
CORE = ("en", "es", "fr", "it", "ru")
VOICES = CORE + tuple(HELD_OUT)


def voice_language(voice: str) -> str:
    if voice.startswith("espeak:"):
        return voice.split(":", 1)[1].split("-")[0].split("+")[0]
    return HELD_OUT[voice].language if voice in HELD_OUT else voice


def digit_recordings(voice: str) -> Dict[str, bytes]:
    """"0".."9" -> the voice saying that digit, 8 kHz 16-bit mono signed linear."""
    if voice in CORE:
        prompts = {p.name: p for p in language_prompts(voice)}
        missing = [d for d in "0123456789" if f"digits/{d}" not in prompts]
        if missing:
            raise SystemExit(f"voice {voice}: no digits/{missing[0]}.wav; install asterisk-core-sounds-{voice}-wav "
                             f"and asterisk-core-sounds-{voice}")
        return {d: prompts[f"digits/{d}"].pcm for d in "0123456789"}
    if voice.startswith("espeak:"):
        return {d: _espeak(voice.split(":", 1)[1], d) for d in "0123456789"}
    if voice not in HELD_OUT:
        raise SystemExit(f"unknown voice {voice!r}; known: {', '.join(VOICES)} or espeak:VOICE")
    folder = _unpacked(HELD_OUT[voice].package) / HELD_OUT[voice].digits_dir
    return {d: _as_slin(folder / f"{d}.{HELD_OUT[voice].extension}") for d in "0123456789"}


def read_number(voice: str, said: str, pause_s: float, tail_s: float = 1.0) -> bytes:
    """``said`` read digit by digit by ``voice``, ``pause_s`` of silence after each digit and
    ``tail_s`` at the end: 8 kHz slin, as a call carries it."""
    recordings = digit_recordings(voice)
    pause = bytes(2 * int(RATE_HZ * pause_s))
    return b"".join(recordings[d] + pause for d in said) + bytes(2 * int(RATE_HZ * tail_s))


def _unpacked(package: str) -> Path:
    target = CACHE_DIR / package
    if target.is_dir():
        return target
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    print(f"fetching {package} (apt-get download, unpacked into {target}, not installed)", flush=True)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        subprocess.run(["apt-get", "download", package], cwd=CACHE_DIR, check=True, capture_output=True)
        deb = next(CACHE_DIR.glob(f"{package}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError, StopIteration) as error:
        raise SystemExit(f"could not fetch Debian package {package} ({error}); it needs apt-get and a "
                         "Debian mirror") from error
    deb.unlink()
    partial.rename(target)
    return target


def espeak(voice: str, text: str) -> bytes:
    """espeak-ng's ``voice`` (``en-us``, ``en-gb+f3``, ...) saying ``text``, 8 kHz slin."""
    return _espeak(voice, text)


def _espeak(voice: str, digit: str) -> bytes:
    """espeak-ng saying ``digit`` (as a word: it reads a numeral the same way), 8 kHz slin."""
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "digit.wav"
        try:
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), "--", digit], check=True,
                           capture_output=True)
        except (OSError, subprocess.CalledProcessError) as error:
            raise SystemExit(f"espeak-ng could not speak with voice {voice!r} ({error})") from error
        return _as_slin(wav)


def _as_slin(path: Path) -> bytes:
    try:
        done = subprocess.run(["sox", str(path), "-t", "raw", "-r", str(RATE_HZ), "-e", "signed", "-b", "16",
                               "-c", "1", "-"], check=True, capture_output=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(f"sox could not read {path} ({error}); install sox") from error
    return done.stdout
