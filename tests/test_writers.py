"""Transcript writers and timestamp formatting."""
import json

import pytest

from whisper.writers import compression_ratio, format_timestamp, get_writer

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
