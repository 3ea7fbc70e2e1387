"""transcribe and transcribe_batch on real speech: Asterisk prompts, a long concatenation, espeak-ng."""
import io
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Tuple

import numpy as np
import pytest

from audiosocket_bridge.testing.prompts import english_prompts, prompt
from whisper.audio import SAMPLE_RATE_HZ, AudioError, load_audio
from whisper.evaluation import english_wer, normalize_english
from whisper.progress import LineProgress
from whisper.transcribe import transcribe, transcribe_batch

WER_LIMIT = 0.15  # tiny.en greedy reaches about 7 % on the whole prompt set
LONG_FILE_PROMPTS = ["agent-pass", "vm-goodbye", "conf-getpin", "vm-nomore", "auth-thankyou", "vm-review"]


wer = english_wer


def test_wer_on_forty_prompts(tiny_model):
    short = [p for p in english_prompts() if p.path.stat().st_size < 8000 * 2 * 6]  # under ~6 s
    sample = short[:: len(short) // 40][:40]
    results = transcribe_batch(tiny_model, [p.path for p in sample], batch_size=20)
    assert wer([p.text for p in sample], [r["text"] for r in results]) < WER_LIMIT


def test_batch_matches_single_transcription(tiny_model):
    names = ["agent-pass", "vm-goodbye"]
    batched = transcribe_batch(tiny_model, [prompt(n).path for n in names])
    for name, result in zip(names, batched):
        single = transcribe(tiny_model, str(prompt(name).path), temperature=0.0)
        assert result["text"] == single["text"]
        assert result["segments"][0]["start"] == 0.0 and result["segments"][-1]["end"] > 0.5


@pytest.fixture(scope="module")
def long_audio():
    silence = np.zeros(3 * SAMPLE_RATE_HZ, np.float32)
    pieces, spans_s = [], []
    for name in LONG_FILE_PROMPTS:
        start_s = sum(len(p) for p in pieces) / SAMPLE_RATE_HZ
        pieces += [load_audio(prompt(name).path), silence]
        spans_s.append((start_s, start_s + len(pieces[-2]) / SAMPLE_RATE_HZ))
    audio = np.concatenate(pieces)
    assert len(audio) > 30 * SAMPLE_RATE_HZ
    return audio, spans_s


@pytest.fixture(scope="module")
def long_result(tiny_model, long_audio):
    return transcribe(tiny_model, long_audio[0], word_timestamps=True)


def test_long_file_segments_in_order(long_result, long_audio):
    audio, _ = long_audio
    segments = [s for s in long_result["segments"] if s["text"]]
    assert len(segments) >= len(LONG_FILE_PROMPTS) - 1
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts)
    assert all(s["start"] <= s["end"] <= len(audio) / SAMPLE_RATE_HZ + 0.5 for s in segments)
    assert max(s["seek"] for s in segments) > 0  # the second window really was decoded
    assert [s["id"] for s in long_result["segments"]] == list(range(len(long_result["segments"])))
    references = " ".join(prompt(name).text for name in LONG_FILE_PROMPTS)
    assert wer([references], [long_result["text"]]) < 0.2


def test_word_timestamps_inside_audio_and_monotonic(long_result, long_audio):
    audio, spans_s = long_audio
    words = [w for s in long_result["segments"] for w in s["words"]]
    assert len(words) > 20
    assert all(0 <= w["start"] <= w["end"] <= len(audio) / SAMPLE_RATE_HZ for w in words)
    assert all(a["start"] <= b["start"] for a, b in zip(words, words[1:]))
    assert all(0 <= w["probability"] <= 1 for w in words)
    # each prompt's first word starts inside that prompt's audio (tiny.en's alignment heads can be
    # ~1 s late on very short prompts; faster-whisper's word timings agree with ours there)
    first_words = [normalize_english(prompt(n).text).split()[0] for n in LONG_FILE_PROMPTS]
    for first_word, (start_s, end_s) in zip(first_words, spans_s):
        candidates = [w["start"] for w in words if normalize_english(w["word"]) == first_word]
        assert any(start_s - 0.5 <= c <= end_s + 0.5 for c in candidates), (first_word, start_s, candidates)


# Ordinary voicemail sentences, not pangrams: with 61 words one misheard word moves the WER by
# under 0.02, so rounding differences between CPUs (bfloat16 on AMX vs AVX512-BF16) cannot flip it.
# tiny.en measured 0.03-0.07 on these for voices en/en-us at 130-175 words per minute, float32 and
# bfloat16 encoders alike.
ESPEAK_TEXT = (
    "Hello, this is a message for the accounts team. I would like to change the date of my appointment "
    "to next Monday. Please call me back on my mobile phone when you have a moment. Good morning. "
    "The meeting has been moved to three o'clock this afternoon. Please bring the printed report "
    "and let me know if you cannot make it."
)
ESPEAK_RATE_HZ = 22050  # espeak-ng's native rate, which load_audio must resample to 16 kHz
ESPEAK_WER_LIMIT = 0.15


def speak_with_espeak(text: str, path: Path) -> None:
    """A WAV of ``text`` in espeak-ng's English voice at 140 words per minute (under 30 s of audio)."""
    command = ["espeak-ng", "-v", "en", "-s", "140", "-w", str(path), text]
    subprocess.run(command, check=True, capture_output=True)


def wav_rate_and_frames(path: Path) -> Tuple[int, int]:
    with wave.open(str(path), "rb") as wav:
        return wav.getframerate(), wav.getnframes()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_speech(tiny_model, tmp_path):
    wav_path = tmp_path / "espeak.wav"
    speak_with_espeak(ESPEAK_TEXT, wav_path)
    rate_hz, n_frames = wav_rate_and_frames(wav_path)
    assert rate_hz == ESPEAK_RATE_HZ
    audio = load_audio(wav_path)
    assert abs(len(audio) - n_frames * SAMPLE_RATE_HZ / rate_hz) < 1  # resampled, not read as 16 kHz
    result = transcribe(tiny_model, str(wav_path))
    assert wer([ESPEAK_TEXT], [result["text"]]) <= ESPEAK_WER_LIMIT, result["text"]


def test_initial_prompt_is_not_in_the_text(tiny_model):
    result = transcribe(tiny_model, str(prompt("agent-pass").path), initial_prompt="Voicemail menu.")
    assert "Voicemail" not in result["text"] and "password" in result["text"]


def test_clip_timestamps_limit_the_audio(tiny_model, long_audio):
    audio, spans_s = long_audio
    clip_s = (spans_s[2][0] - 0.5, spans_s[3][0] - 0.5)
    result = transcribe(tiny_model, audio, clip_timestamps=list(clip_s))
    assert result["segments"] and all(clip_s[0] - 0.1 <= s["start"] <= clip_s[1] for s in result["segments"])
    assert wer([prompt(LONG_FILE_PROMPTS[2]).text], [result["text"]]) < 0.3


def test_hallucination_silence_threshold_keeps_real_speech(long_result, tiny_model, long_audio):
    result = transcribe(tiny_model, long_audio[0], word_timestamps=True, hallucination_silence_threshold=2.0)
    assert wer([long_result["text"]], [result["text"]]) < 0.2
    starts = [s["start"] for s in result["segments"]]
    assert starts == sorted(starts)


def test_progress_line_without_tqdm():
    stream = io.StringIO()
    with LineProgress(3000, "frames", stream=stream, min_interval_s=0.0) as bar:
        bar.update(1500)
        bar.update(2000)
    assert " 50% (1500/3000 frames)" in stream.getvalue() and "100% (3000/3000 frames)" in stream.getvalue()


def test_verbose_false_shows_progress(tiny_model, capsys):
    transcribe(tiny_model, str(prompt("vm-goodbye").path), verbose=False)
    assert "100%" in capsys.readouterr().err


def test_batch_refuses_an_empty_input_as_transcribe_does(tiny_model):
    with pytest.raises(AudioError, match="empty audio"):
        transcribe_batch(tiny_model, [np.zeros(16000, np.float32), np.zeros(0, np.float32)])
