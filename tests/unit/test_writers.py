"""Transcript writers and timestamp formatting."""
import json

import pytest

from whisper.writers import SubtitleOptions, compression_ratio, format_timestamp, get_writer

RESULT = {
    "text": " Hello there. General Kenobi.",
    "language": "en",
    "segments": [
        {"id": 0, "start": 0.0, "end": 1.5, "text": " Hello there."},
        {"id": 1, "start": 3661.25, "end": 3662.0, "text": " General --> Kenobi."},
        {"id": 2, "start": 3662.0, "end": 3662.0, "text": ""},
    ],
}


@pytest.mark.parametrize("seconds, hours, marker, expected", [
    (0.0, False, ".", "00:00.000"), (1.5, False, ".", "00:01.500"), (61.0004, False, ".", "01:01.000"),
    (3661.25, False, ".", "01:01:01.250"), (1.5, True, ",", "00:00:01,500"), (59.9996, False, ".", "01:00.000"),
])  # fmt: skip
def test_format_timestamp(seconds, hours, marker, expected):
    assert format_timestamp(seconds, always_include_hours=hours, decimal_marker=marker) == expected


def test_negative_timestamp_is_an_error():
    with pytest.raises(ValueError):
        format_timestamp(-1)


def written(tmp_path, output_format: str) -> str:
    path = get_writer(output_format, tmp_path)(RESULT, "/some/where/call.wav")
    assert path == tmp_path / f"call.{output_format}"
    return path.read_text(encoding="utf-8")


def test_txt(tmp_path):
    assert written(tmp_path, "txt") == "Hello there.\nGeneral --> Kenobi.\n\n"


def test_srt(tmp_path):
    assert written(tmp_path, "srt") == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n"
        "2\n01:01:01,250 --> 01:01:02,000\nGeneral -> Kenobi.\n\n"
    )


def test_vtt(tmp_path):
    assert written(tmp_path, "vtt") == (
        "WEBVTT\n\n00:00.000 --> 00:01.500\nHello there.\n\n01:01:01.250 --> 01:01:02.000\nGeneral -> Kenobi.\n\n"
    )


def test_tsv(tmp_path):
    lines = written(tmp_path, "tsv").splitlines()
    assert lines[:3] == ["start\tend\ttext", "0\t1500\tHello there.", "3661250\t3662000\tGeneral --> Kenobi."]


def test_json(tmp_path):
    assert json.loads(written(tmp_path, "json")) == RESULT


def test_all_formats(tmp_path):
    get_writer("all", tmp_path)(RESULT, "call.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"call.{e}" for e in ("json", "srt", "tsv", "txt", "vtt")]


def test_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown output format"):
        get_writer("docx", tmp_path)


def test_compression_ratio_is_reexported():
    assert compression_ratio("la " * 100) > 2.4 > compression_ratio("Hello there.")


def word(text: str, start: float, end: float) -> dict:
    return {"word": text, "start": start, "end": end, "probability": 0.9}


WORDS = [word(" Please", 0.0, 0.4), word(" enter", 0.5, 0.8), word(" your", 0.8, 1.0),
         word(" password,", 1.0, 1.6), word(" then", 2.0, 2.2), word(" press", 2.2, 2.5), word(" pound.", 2.5, 3.0)]
WORDED = {"text": "", "language": "en", "segments": [
    {"id": 0, "start": 0.0, "end": 3.0, "text": "".join(w["word"] for w in WORDS), "words": WORDS}]}


def cues_of(output_format: str, tmp_path, options: SubtitleOptions) -> list:
    text = get_writer(output_format, tmp_path)(WORDED, "call.wav", options).read_text(encoding="utf-8")
    blocks = [block.splitlines() for block in text.split("\n\n") if "-->" in block]
    return [(b[1] if output_format == "srt" else b[0], "\n".join(b[2:] if output_format == "srt" else b[1:]))
            for b in blocks]


def test_lines_break_at_the_width_and_cues_hold_at_most_max_line_count_lines(tmp_path):
    cues = cues_of("srt", tmp_path, SubtitleOptions(max_line_width=16, max_line_count=2))
    assert cues == [
        ("00:00:00,000 --> 00:00:01,600", "Please enter\nyour password,"),
        ("00:00:02,000 --> 00:00:03,000", "then press\npound."),
    ]


def test_lines_break_after_max_words_per_line(tmp_path):
    cues = cues_of("vtt", tmp_path, SubtitleOptions(max_words_per_line=3))
    assert cues == [("00:00.000 --> 00:03.000", "Please enter your\npassword, then press\npound.")]


def test_highlighted_words_get_a_cue_each_and_gaps_show_the_plain_text(tmp_path):
    cues = cues_of("vtt", tmp_path, SubtitleOptions(max_line_width=50, highlight_words=True))
    assert len(cues) == len(WORDS) + 2  # the pauses before "enter" and "then"
    assert cues[0] == ("00:00.000 --> 00:00.400", "<u>Please</u> enter your password, then press pound.")
    assert cues[1] == ("00:00.400 --> 00:00.500", "Please enter your password, then press pound.")
    assert cues[-1] == ("00:02.500 --> 00:03.000", "Please enter your password, then press <u>pound.</u>")


def test_line_limits_need_word_timestamps(tmp_path):
    with pytest.raises(ValueError, match="word timestamps"):
        get_writer("srt", tmp_path)(RESULT, "call.wav", SubtitleOptions(max_line_width=20))
