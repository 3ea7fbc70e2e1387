"""Every engine option settable by name, from the bridge's flags, environment and INI file, and the
per-call end silence: they reach the engine and change what it does."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from audiosocket_bridge import cli
from audiosocket_bridge import config as config_mod
from audiosocket_bridge.audiosocket.settings import SessionSettings
from audiosocket_bridge.audiosocket.transcription import stream_options
from audiosocket_bridge.registrations import CallOptions
from audiosocket_bridge.testing.fake_decoder import FakeDecoder, ManualClock
from audiosocket_bridge.testing.prompts import prompt
from whisper.streaming import EngineOptions, StreamingEngine
from whisper.streaming.options import option_defaults, parse_settings, with_options
from whisper.streaming.types import StreamOptions
from tests.support.builders import resolved_config

DOCS = Path(__file__).resolve().parents[2] / "docs" / "administrators.rst"


def _as_text(value) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return "none" if value is None else str(value)


def test_every_option_reads_back_from_the_text_of_its_default():
    defaults = option_defaults()
    assert {"endpoint.trailing_silence_s", "vad.snr_db", "guard.fallback.temperatures", "max_batch"} <= set(defaults)
    assert with_options(EngineOptions(), {name: _as_text(v) for name, v in defaults.items()}) == EngineOptions()


def test_values_of_every_kind_are_parsed():
    options = with_options(EngineOptions(), {
        "endpoint.trailing_silence_s": "0.8", "guard.fallback.temperatures": "0, 0.4",
        "hold_unsure": "no", "guard.fallback.compression_ratio_threshold": "none", "max_batch": "4"})
    assert options.endpoint.trailing_silence_s == 0.8
    assert options.guard.fallback.temperatures == (0.0, 0.4)
    assert options.hold_unsure is False
    assert options.guard.fallback.compression_ratio_threshold is None
    assert options.max_batch == 4
    assert options.vad == EngineOptions().vad  # the rest untouched


@pytest.mark.parametrize("setting, message", [
    ({"endpoint.trailing_silnce_s": "1"}, "unknown engine option 'endpoint.trailing_silnce_s' "
                                         r"\(did you mean endpoint.trailing_silence_s\?\)"),
    ({"endpoint.trailing_silence_s": "-1"}, "must be 0 or more"),
    ({"vad.min_level_dbfs": "3"}, "must be 0 or less"),
    ({"endpoint.max_utterance_s": "40"}, "must be 1 to 28"),
    ({"max_batch": "0"}, "must be 1 to 64"),
    ({"vad.snr_db": "loud"}, "'loud' is not a number"),
    ({"endpoint.trailing_silence_s": "nan"}, "is not a number"),
    ({"max_batch": "2.5"}, "is not a whole number"),
    ({"hold_unsure": "maybe"}, "is not a boolean"),
    ({"endpoint": "1"}, "is a group"),
])
def test_bad_options_are_refused_with_one_line(setting, message):
    with pytest.raises(ValueError, match=message) as error:
        with_options(EngineOptions(), setting)
    assert "\n" not in str(error.value)


def test_entries_need_a_name_and_a_value():
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        parse_settings(["endpoint.trailing_silence_s"])
    assert parse_settings(["a=1", "b = 2", "a=3"]) == {"a": "3", "b": "2"}


def test_flags_win_over_the_environment_which_wins_over_the_file_one_option_at_a_time(tmp_path):
    settings = resolved_config(
        ["--engine-option", "vad.snr_db=9"],
        {"AUDIOSOCKET_ENGINE_OPTIONS": "vad.snr_db=10;endpoint.min_speech_s=0.3"},
        tmp_path, "[engine]\nvad.snr_db = 11\nendpoint.min_speech_s = 0.4\nendpoint.trailing_silence_s = 0.9\n")
    options = config_mod.engine_options(settings)
    assert options.vad.snr_db == 9.0  # flag
    assert options.endpoint.min_speech_s == 0.3  # environment
    assert options.endpoint.trailing_silence_s == 0.9  # file
    assert config_mod.engine_options(resolved_config([], {})) == EngineOptions()


def test_a_bad_engine_option_stops_the_bridge_before_it_starts(capsys, tmp_path):
    status = cli.main(["--engine-option", "endpoint.trailing_silence=1", "--storage", f"sqlite:///{tmp_path}/t.db"])
    assert status == cli.EXIT_BAD_CONFIG
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "did you mean endpoint.trailing_silence_s?" in error
    assert not (tmp_path / "t.db").exists()


def test_the_list_shows_the_options_in_effect(capsys):
    assert cli.main(["--list-engine-options", "--engine-option", "endpoint.trailing_silence_s=0.9"]) == 0
    listed = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert listed["endpoint.trailing_silence_s"] == "0.9"
    assert set(listed) == set(option_defaults())


def test_every_engine_option_is_documented_for_administrators():
    documented = set(re.findall(r"``([a-z_]+(?:\.[a-z_]+)*)``", DOCS.read_text(encoding="utf-8")))
    assert sorted(set(option_defaults()) - documented) == []


def test_the_engine_process_gets_the_options(monkeypatch):
    built = {}

    class Pool:
        def __init__(self, model, workers, **kwargs):
            built.update(kwargs)

        def start(self):
            pass

    monkeypatch.setattr("whisper.streaming.pool.EnginePool", Pool)
    cli.build_engine(resolved_config(["--engine-option", "endpoint.trailing_silence_s=1.5"], {}))
    assert built["options"].endpoint.trailing_silence_s == 1.5


# ---------------------------------------------------------------- what they change

def _two_sentences_with_a_pause(pause_s: float) -> bytes:
    """Two real prompts, `pause_s` of silence between them: 8 kHz slin."""
    first, second = prompt("agent-pass").pcm, prompt("conf-onlyperson").pcm
    return first + bytes(int(pause_s * 8000) * 2) + second + bytes(8000 * 2 * 2)


def _finals(options: EngineOptions, stream_options: StreamOptions = StreamOptions(partials=False)) -> int:
    clock = ManualClock()
    engine = StreamingEngine(decoder=FakeDecoder(clock), options=options, clock=clock)
    finals = []
    stream = engine.open_stream("call", stream_options, lambda event: finals.append(event) if event.is_final else None)
    pcm = _two_sentences_with_a_pause(0.9)
    step = 1600  # 100 ms of 8 kHz slin
    for offset in range(0, len(pcm), step):
        stream.push(pcm[offset : offset + step], 8000)
        clock.advance(0.1)
        engine.step()
    future = stream.close()
    while not future.done():
        engine.step()
    return len(finals)


def test_a_longer_end_silence_from_the_config_keeps_a_pause_inside_one_utterance():
    assert _finals(EngineOptions()) == 2  # 0.9 s ends an utterance by default (0.5 s)
    longer = config_mod.engine_options(resolved_config(["--engine-option", "endpoint.trailing_silence_s=1.5"], {}))
    assert _finals(longer) == 1


def test_a_calls_own_end_silence_reaches_its_stream_and_wins_over_the_engines():
    options = CallOptions.from_fields({"EndSilence": "1.5"})
    assert options.end_silence_s == 1.5
    streamed = stream_options(SessionSettings(), options)
    assert streamed.trailing_silence_s == 1.5
    assert _finals(EngineOptions(), StreamOptions(partials=False, trailing_silence_s=1.5)) == 1
    assert stream_options(SessionSettings(), CallOptions()).trailing_silence_s is None


@pytest.mark.parametrize("text", ["0.1", "9", "soon", "nan"])
def test_a_calls_end_silence_out_of_bounds_is_refused(text):
    with pytest.raises(ValueError):
        CallOptions.from_fields({"end_silence": text})


def test_stored_options_of_a_newer_bridge_still_load():
    stored = {"language": "en", "end_silence_s": 1.2, "a_later_option": "x"}
    assert CallOptions.from_stored(stored) == CallOptions(language="en", end_silence_s=1.2)
