"""Writing transcripts as plain text, WebVTT and SRT subtitles, TSV and JSON."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, TextIO, Tuple, Union

from .text_metrics import compression_ratio

__all__ = ["WRITERS", "ResultWriter", "SubtitleOptions", "compression_ratio", "format_timestamp", "get_writer"]

Cue = Tuple[float, float, str]  # start s, end s, text


@dataclass(frozen=True)
class SubtitleOptions:
    """How SRT/VTT cues are cut from word timestamps; the defaults give one cue per segment."""

    max_line_width: Optional[int] = None  # characters per line
    max_words_per_line: Optional[int] = None  # instead of a width
    max_line_count: Optional[int] = None  # lines per cue; further lines start a new cue
    highlight_words: bool = False  # one cue per spoken word, with that word underlined

    @property
    def uses_words(self) -> bool:
        limits = (self.max_line_width, self.max_words_per_line, self.max_line_count)
        return self.highlight_words or any(limit is not None for limit in limits)


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

    def __call__(self, result: dict, audio_path: Union[str, Path], options: SubtitleOptions = SubtitleOptions()) -> Path:
        path = self.output_dir / f"{Path(audio_path).stem}.{self.extension}"
        with open(path, "w", encoding="utf-8") as file:
            self.write_result(result, file, options)
        return path

    def write_result(self, result: dict, file: TextIO, options: SubtitleOptions = SubtitleOptions()) -> None:
        raise NotImplementedError


class WriteTXT(ResultWriter):
    extension = "txt"

    def write_result(self, result: dict, file: TextIO, options: SubtitleOptions = SubtitleOptions()) -> None:
        for segment in result["segments"]:
            print(segment["text"].strip(), file=file)


class SubtitlesWriter(ResultWriter):
    always_include_hours = False
    decimal_marker = "."

    def cues(self, result: dict, options: SubtitleOptions) -> Iterator[Tuple[str, str, str]]:
        """(start, end, text) per cue, formatted for this subtitle format."""
        for segment in result["segments"]:
            if options.uses_words:
                cues = word_cues(segment, options)
            else:
                cues = [(segment["start"], segment["end"], segment["text"].strip())]
            for start, end, text in cues:
                if text:
                    yield self.timestamp(start), self.timestamp(end), text.replace("-->", "->")

    def timestamp(self, seconds: float) -> str:
        return format_timestamp(seconds, self.always_include_hours, self.decimal_marker)


def word_cues(segment: dict, options: SubtitleOptions) -> List[Cue]:
    """A segment's cues from its words: lines broken by width or word count, at most
    ``max_line_count`` lines per cue, and with ``highlight_words`` one cue per word."""
    words = segment.get("words")
    if words is None:
        raise ValueError("line limits and word highlighting need word timestamps (--word_timestamps True)")
    cues: List[Cue] = []
    lines = _break_lines([w for w in words if w["word"].strip()], options)
    per_cue = options.max_line_count or len(lines) or 1
    for first in range(0, len(lines), per_cue):
        cue_lines = lines[first : first + per_cue]
        if not options.highlight_words:
            cues.append((cue_lines[0][0]["start"], cue_lines[-1][-1]["end"], _text(cue_lines)))
            continue
        previous_end = cue_lines[0][0]["start"]
        for word in (w for line in cue_lines for w in line):
            if word["start"] > previous_end:  # between words: the cue without a highlight
                cues.append((previous_end, word["start"], _text(cue_lines)))
            cues.append((word["start"], word["end"], _text(cue_lines, highlight=word)))
            previous_end = word["end"]
    return cues


def _break_lines(words: List[dict], options: SubtitleOptions) -> List[List[dict]]:
    lines: List[List[dict]] = []
    for word in words:
        line = lines[-1] if lines else None
        if line is None or _too_long(line + [word], options):
            lines.append([word])
        else:
            line.append(word)
    return lines


def _too_long(line: List[dict], options: SubtitleOptions) -> bool:
    if options.max_line_width is not None:
        return len("".join(w["word"] for w in line).strip()) > options.max_line_width
    return options.max_words_per_line is not None and len(line) > options.max_words_per_line


def _text(lines: List[List[dict]], highlight: Optional[dict] = None) -> str:
    def shown(word: dict) -> str:
        if word is not highlight:
            return word["word"]
        stripped = word["word"].strip()
        return word["word"][: len(word["word"]) - len(word["word"].lstrip())] + f"<u>{stripped}</u>"

    return "\n".join("".join(shown(w) for w in line).strip() for line in lines)


class WriteVTT(SubtitlesWriter):
    extension = "vtt"

    def write_result(self, result: dict, file: TextIO, options: SubtitleOptions = SubtitleOptions()) -> None:
        print("WEBVTT\n", file=file)
        for start, end, text in self.cues(result, options):
            print(f"{start} --> {end}\n{text}\n", file=file)


class WriteSRT(SubtitlesWriter):
    extension = "srt"
    always_include_hours = True
    decimal_marker = ","

    def write_result(self, result: dict, file: TextIO, options: SubtitleOptions = SubtitleOptions()) -> None:
        for index, (start, end, text) in enumerate(self.cues(result, options), start=1):
            print(f"{index}\n{start} --> {end}\n{text}\n", file=file)


class WriteTSV(ResultWriter):
    """start and end in integer milliseconds, tab-separated, as spreadsheets read them without rounding."""

    extension = "tsv"

    def write_result(self, result: dict, file: TextIO, options: SubtitleOptions = SubtitleOptions()) -> None:
        print("start", "end", "text", sep="\t", file=file)
        for segment in result["segments"]:
            text = segment["text"].strip().replace("\t", " ")
            print(round(1000 * segment["start"]), round(1000 * segment["end"]), text, sep="\t", file=file)


class WriteJSON(ResultWriter):
    extension = "json"

    def write_result(self, result: dict, file: TextIO, options: SubtitleOptions = SubtitleOptions()) -> None:
        json.dump(result, file, ensure_ascii=False)


WRITERS: Dict[str, type] = {"txt": WriteTXT, "vtt": WriteVTT, "srt": WriteSRT, "tsv": WriteTSV, "json": WriteJSON}


def get_writer(output_format: str, output_dir: Union[str, Path]) -> Callable[..., object]:
    """A writer for one format, or for ``"all"`` one that writes every format."""
    if output_format == "all":
        writers = [writer(output_dir) for writer in WRITERS.values()]

        def write_all(result: dict, audio_path: Union[str, Path], options: SubtitleOptions = SubtitleOptions()) -> List[Path]:
            return [writer(result, audio_path, options) for writer in writers]

        return write_all
    if output_format not in WRITERS:
        raise ValueError(f"unknown output format {output_format!r}: use one of {', '.join(WRITERS)}, all")
    return WRITERS[output_format](output_dir)
