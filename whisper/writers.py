"""Writing transcripts as plain text, WebVTT and SRT subtitles, TSV and JSON."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, Iterator, List, TextIO, Tuple, Union

from .text_metrics import compression_ratio

__all__ = ["WRITERS", "ResultWriter", "compression_ratio", "format_timestamp", "get_writer"]


def format_timestamp(seconds: float, always_include_hours: bool = False, decimal_marker: str = ".") -> str:
    """``[hh:]mm:ss.mmm``; hours appear when non-zero or asked for."""
    if seconds < 0:
        raise ValueError(f"non-negative timestamp expected, got {seconds}")
    total_ms = round(seconds * 1000.0)
    hours, rest_ms = divmod(total_ms, 3_600_000)
    minutes, rest_ms = divmod(rest_ms, 60_000)
    whole_s, ms = divmod(rest_ms, 1000)
    hours_part = f"{hours:02d}:" if always_include_hours or hours > 0 else ""
    return f"{hours_part}{minutes:02d}:{whole_s:02d}{decimal_marker}{ms:03d}"


class ResultWriter:
    """Writes one transcript to ``output_dir/<audio file stem>.<extension>``."""

    extension: str = ""

    def __init__(self, output_dir: Union[str, Path]):
        self.output_dir = Path(output_dir)

    def __call__(self, result: dict, audio_path: Union[str, Path]) -> Path:
        path = self.output_dir / f"{Path(audio_path).stem}.{self.extension}"
        with open(path, "w", encoding="utf-8") as file:
            self.write_result(result, file)
        return path

    def write_result(self, result: dict, file: TextIO) -> None:
        raise NotImplementedError


class WriteTXT(ResultWriter):
    extension = "txt"

    def write_result(self, result: dict, file: TextIO) -> None:
        for segment in result["segments"]:
            print(segment["text"].strip(), file=file)


class SubtitlesWriter(ResultWriter):
    always_include_hours = False
    decimal_marker = "."

    def cues(self, result: dict) -> Iterator[Tuple[str, str, str]]:
        """(start, end, text) per non-empty segment, formatted for this subtitle format."""
        for segment in result["segments"]:
            text = segment["text"].strip().replace("-->", "->")
            if text:
                yield self.timestamp(segment["start"]), self.timestamp(segment["end"]), text

    def timestamp(self, seconds: float) -> str:
        return format_timestamp(seconds, self.always_include_hours, self.decimal_marker)


class WriteVTT(SubtitlesWriter):
    extension = "vtt"

    def write_result(self, result: dict, file: TextIO) -> None:
        print("WEBVTT\n", file=file)
        for start, end, text in self.cues(result):
            print(f"{start} --> {end}\n{text}\n", file=file)


class WriteSRT(SubtitlesWriter):
    extension = "srt"
    always_include_hours = True
    decimal_marker = ","

    def write_result(self, result: dict, file: TextIO) -> None:
        for index, (start, end, text) in enumerate(self.cues(result), start=1):
            print(f"{index}\n{start} --> {end}\n{text}\n", file=file)


class WriteTSV(ResultWriter):
    """start and end in integer milliseconds, tab-separated, as spreadsheets read them without rounding."""

    extension = "tsv"

    def write_result(self, result: dict, file: TextIO) -> None:
        print("start", "end", "text", sep="\t", file=file)
        for segment in result["segments"]:
            text = segment["text"].strip().replace("\t", " ")
            print(round(1000 * segment["start"]), round(1000 * segment["end"]), text, sep="\t", file=file)


class WriteJSON(ResultWriter):
    extension = "json"

    def write_result(self, result: dict, file: TextIO) -> None:
        json.dump(result, file, ensure_ascii=False)


WRITERS: Dict[str, type] = {"txt": WriteTXT, "vtt": WriteVTT, "srt": WriteSRT, "tsv": WriteTSV, "json": WriteJSON}


def get_writer(output_format: str, output_dir: Union[str, Path]) -> Callable[[dict, Union[str, Path]], object]:
    """A writer for one format, or for ``"all"`` one that writes every format."""
    if output_format == "all":
        writers = [writer(output_dir) for writer in WRITERS.values()]

        def write_all(result: dict, audio_path: Union[str, Path]) -> List[Path]:
            return [writer(result, audio_path) for writer in writers]

        return write_all
    if output_format not in WRITERS:
        raise ValueError(f"unknown output format {output_format!r}: use one of {', '.join(WRITERS)}, all")
    return WRITERS[output_format](output_dir)
