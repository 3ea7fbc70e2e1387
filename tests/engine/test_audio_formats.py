"""Reading every audio format a PBX or a user has, from real recordings converted with sox and opusenc:
lossless ones give back the very samples, G.711 the samples sox decodes, lossy ones the words."""
from __future__ import annotations

import shutil
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

import whisper
from whisper.audio import AudioError, load_audio, read_audio
from whisper.evaluation import word_edit_distance
from tests.support.fixtures import shared_fixture
from whisper.normalizers import EnglishTextNormalizer

PROMPT = Path("/usr/share/asterisk/sounds/en_US_f_Allison/agent-pass.wav")  # 8 kHz 16-bit mono
PROMPT_WORDS = "please enter your password followed by the pound key"
SECOND = Path("/usr/share/asterisk/sounds/en_US_f_Allison/vm-goodbye.wav")  # "Goodbye."

# name -> sox output arguments; every one keeps the prompt's 16-bit samples exactly.
LOSSLESS = {
    "pcm16.wav": [], "pcm24.wav": ["-b", "24"], "pcm32.wav": ["-b", "32"], "float.wav": ["-e", "floating-point"],
    "prompt.flac": [], "prompt.sln": ["-t", "raw", "-e", "signed", "-b", "16"],
    "prompt.slin": ["-t", "raw", "-e", "signed", "-b", "16"], "prompt.aiff": [],
}  # fmt: skip
G711 = {"prompt.ulaw": ["-t", "ul"], "prompt.pcm": ["-t", "ul"], "prompt.alaw": ["-t", "al"],
        "mulaw.wav": ["-e", "u-law"], "alaw.wav": ["-e", "a-law"]}  # fmt: skip
LOSSY = {"prompt.gsm": ["-t", "gsm"], "wav49.wav": ["-e", "gsm-full-rate"], "prompt.mp3": [],
         "vorbis.ogg": []}  # fmt: skip
G711_SOX_TYPE = {"ulaw": "ul", "pcm": "ul", "alaw": "al"}


def sox(*args: object) -> None:
    """sox without dither (which is random), so each run converts to the same file."""
    subprocess.run(["sox", "-D", *map(str, args)], check=True, capture_output=True, timeout=60)


def prompt_samples(path: Path = PROMPT) -> np.ndarray:
    with wave.open(str(path)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.float32) / 32768


def sox_decoded(path: Path) -> np.ndarray:
    """sox's own decoding of ``path`` as 16-bit samples."""
    kind = G711_SOX_TYPE.get(path.suffix[1:])
    source = ["-t", kind, "-r", "8000", "-c", "1", path] if kind else [path]
    out = subprocess.run(["sox", *map(str, source), "-t", "s16", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(out, "<i2").astype(np.float32) / 32768


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("formats")
    for name, args in {**LOSSLESS, **G711, **LOSSY}.items():
        sox(PROMPT, *args, folder / name)
    sox(PROMPT, "-r", "16000", folder / "16k.wav")
    sox(folder / "16k.wav", "-t", "raw", folder / "prompt.sln16")
    sox(PROMPT, "-b", "24", "-c", "3", folder / "three-channels.wav")  # sox writes WAVE_FORMAT_EXTENSIBLE
    subprocess.run(["opusenc", "--quiet", PROMPT, folder / "prompt.opus"], check=True, timeout=60)
    return folder


def wav_format_tag(path: Path) -> int:
    data = path.read_bytes()
    return struct.unpack_from("<H", data, data.index(b"fmt ") + 8)[0]


@pytest.mark.parametrize("name", sorted(LOSSLESS))
def test_lossless_formats_give_back_the_samples(converted, name):
    samples, rate_hz = read_audio(converted / name)
    assert rate_hz == 8000 and samples.shape[1] == 1
    np.testing.assert_array_equal(samples[:, 0], prompt_samples())


def test_24_bit_multichannel_wav_is_extensible_and_read(converted):
    path = converted / "three-channels.wav"
    assert wav_format_tag(path) == 0xFFFE  # the standard library's wave module refuses this one
    samples, rate_hz = read_audio(path)
    assert samples.shape[1] == 3 and rate_hz == 8000
    np.testing.assert_array_equal(samples[:, 2], prompt_samples())
    np.testing.assert_allclose(load_audio(path), load_audio(PROMPT), atol=1e-6)


def test_sln16_is_16khz_slin(converted):
    samples, rate_hz = read_audio(converted / "prompt.sln16")
    assert rate_hz == 16000
    np.testing.assert_array_equal(samples[:, 0], prompt_samples(converted / "16k.wav"))


@pytest.mark.parametrize("name", sorted(G711))
def test_g711_decodes_as_sox_does(converted, name):
    samples, rate_hz = read_audio(converted / name)
    assert rate_hz == 8000
    np.testing.assert_array_equal(samples[:, 0], sox_decoded(converted / name))
    assert np.abs(samples[:, 0] - prompt_samples()).max() < 0.02  # G.711's quantisation, not noise


def test_ima_adpcm_wav_decodes_as_sox_does(converted):
    """(Not transcribed: at 4 bits a sample tiny.en hears "pound key" as "Panki".)"""
    sox(PROMPT, "-e", "ima-adpcm", converted / "adpcm.wav")
    samples, _ = read_audio(converted / "adpcm.wav")
    np.testing.assert_array_equal(samples[:, 0], sox_decoded(converted / "adpcm.wav"))


@pytest.mark.parametrize("name", sorted(LOSSY) + ["prompt.opus"])
def test_lossy_formats_are_transcribed(converted, tiny_model, name):
    """At most one word of nine may differ: the codec's loss, not the reading, could cost tiny.en a word."""
    words = EnglishTextNormalizer()(whisper.transcribe(tiny_model, str(converted / name), temperature=0.0)["text"])
    assert word_edit_distance(PROMPT_WORDS.split(), words.split()) <= 1, words


def test_jfk_flac_is_44khz_stereo_mixed_to_16khz_mono():
    samples, rate_hz = read_audio(shared_fixture("jfk.flac"))
    assert (rate_hz, samples.shape[1]) == (44100, 2)
    audio = load_audio(shared_fixture("jfk.flac"))
    assert audio.ndim == 1 and abs(len(audio) - len(samples) * 16000 / 44100) <= 1


def test_stereo_recording_keeps_one_leg_per_channel(tmp_path):
    """MixMonitor's D option: the caller on the left channel, the callee on the right."""
    sox("-M", PROMPT, SECOND, tmp_path / "call.wav")
    samples, _ = read_audio(tmp_path / "call.wav")
    np.testing.assert_array_equal(samples[:, 0], prompt_samples())
    second = prompt_samples(SECOND)
    np.testing.assert_array_equal(samples[: len(second), 1], second)
    assert not samples[len(second):, 1].any()  # sox pads the shorter leg with silence


@pytest.mark.parametrize("name, content", [
    ("notes.mp3", b"this is not audio at all\n" * 40),
    ("garbage.wav", b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk"),
    ("truncated.flac", b"fLaC\x00\x00\x00\x22"),
    ("half-a-sample.sln", b"\x01"),
])  # fmt: skip
def test_unreadable_files_are_one_line_errors(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioError) as error:
        load_audio(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)
    assert "does not exist" not in str(error.value)  # libsndfile's words for an unknown format


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_audio(tmp_path / "nothing.flac")


def test_tools_exist():
    assert shutil.which("sox") and shutil.which("opusenc")
