"""The ``whisper`` command in a subprocess: real transcription to files, and one-line errors with exit code 2."""
import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "/usr/share/asterisk/sounds/en/agent-pass.wav"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "whisper.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_transcribes_a_prompt_to_subtitles_and_json(tmp_path):
    done = run_cli(PROMPT, "--output_dir", "out", "--output_format", "all", "--beam_size", "2", "--threads", "2",
                   "--word_timestamps", "True", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "password" in done.stdout  # verbose prints the segments
    out = tmp_path / "out"
    srt = (out / "agent-pass.srt").read_text()
    assert srt.startswith("1\n00:00:00,000 --> 00:00:03,") and "pound key" in srt
    assert (out / "agent-pass.vtt").read_text().startswith("WEBVTT\n\n00:00.000 --> 00:03.")
    result = json.loads((out / "agent-pass.json").read_text())
    assert result["language"] == "en" and "password" in result["text"]
    assert [w["word"] for w in result["segments"][0]["words"]][:3] == [" Please", " enter", " your"]


def test_subtitle_lines_are_broken_at_max_line_width(tmp_path):
    done = run_cli(PROMPT, "--output_dir", "out", "--output_format", "srt", "--beam_size", "2", "--threads", "2",
                   "--word_timestamps", "True", "--max_line_width", "20", "--max_line_count", "1", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    cues = [block.splitlines() for block in (tmp_path / "out" / "agent-pass.srt").read_text().split("\n\n") if block]
    assert len(cues) >= 3 and all(len(cue) == 3 and len(cue[2]) <= 20 for cue in cues), cues
    assert "pound" in " ".join(cue[2] for cue in cues)


def write_empty_wav(path: Path) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)


@pytest.mark.parametrize("case, message", [
    ("missing", "audio file not found"), ("corrupt", "not a readable audio file"),
    ("empty", "holds no audio samples"), ("unknown model", "unknown model 'nope'"),
    ("small", "truncated"),  # installed or not, the message says why small can't be had
    ("width without words", "need --word_timestamps True"), ("width and words", "not both"),
])  # fmt: skip
def test_bad_input_exits_2_with_one_line(tmp_path, case, message):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    write_empty_wav(tmp_path / "empty.wav")
    args = {
        "missing": ["missing.wav"], "corrupt": ["corrupt.wav"], "empty": ["empty.wav"],
        "unknown model": [PROMPT, "--model", "nope"], "small": [PROMPT, "--model", "small"],
        "width without words": [PROMPT, "--max_line_width", "20"],
        "width and words": [PROMPT, "--word_timestamps", "True", "--max_line_width", "20", "--max_words_per_line", "3"],
    }[case]  # fmt: skip
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("whisper: error: ") and message in lines[0]
