"""Custom vocabulary: phrases boosted within a bound while decoded, per stream and per decode."""

import pytest
import torch

from whisper.tokenizer import get_tokenizer
from whisper.vocabulary import MAX_PHRASES, Vocabulary, parse_vocabulary

TOKENIZER = get_tokenizer(False)


def test_the_dialplan_form_and_its_bounds():
    assert parse_vocabulary(" Zorblax | Quentara  Pro |").phrases == ("Zorblax", "Quentara Pro")
    for bad in ("", " | ", "|".join(["x"] * (MAX_PHRASES + 1)), "a" * 61):
        with pytest.raises(ValueError):
            parse_vocabulary(bad)


def test_phrases_start_anywhere_after_a_space_and_bare_only_where_a_word_cannot_go_on():
    bias = Vocabulary(("Zorblax",)).logit_filter(TOKENIZER, sample_begin=0)
    spaced, bare = TOKENIZER.encode(" Zorblax"), TOKENIZER.encode("Zorblax")
    assert spaced[0] in bias.continuations([]) and bare[0] in bias.continuations([])
    after_word = TOKENIZER.encode(" the")
    assert spaced[0] in bias.continuations(after_word) and bare[0] not in bias.continuations(after_word)
    assert bare[0] in bias.continuations(TOKENIZER.encode(' "'))
    assert spaced[1] in bias.continuations(after_word + spaced[:1])  # the phrase goes on


def test_the_bonus_goes_only_to_tokens_the_model_already_finds_close():
    vocabulary = Vocabulary(("Zorblax",), bonus_logit=2.0, margin=3.0)
    bias = vocabulary.logit_filter(TOKENIZER, sample_begin=0)
    first = TOKENIZER.encode(" Zorblax")[0]
    best = TOKENIZER.encode(" Sorry")[0]
    for gap, boosted in ((1.0, True), (2.9, True), (3.5, False)):
        logits = torch.full((1, TOKENIZER.eot + 1), -30.0)
        logits[0, best], logits[0, first] = 0.0, -gap
        bias.apply(logits, torch.tensor([TOKENIZER.encode(" the")]))
        assert float(logits[0, first]) == pytest.approx(-gap + (2.0 if boosted else 0.0)), gap
        assert float(logits[0, best]) == 0.0


def test_stream_options_refuse_a_bad_vocabulary_when_the_stream_opens():
    from whisper.streaming.options import check_stream_options
    from whisper.streaming.types import StreamOptions

    check_stream_options(StreamOptions(vocabulary="Zorblax|Okonkwo"), multilingual=False)
    with pytest.raises(ValueError):
        check_stream_options(StreamOptions(vocabulary=" | "), multilingual=False)


def test_the_bridge_sets_a_vocabulary_by_flag_environment_or_file_and_a_call_replaces_it(tmp_path):
    from audiosocket_bridge.audiosocket.settings import SessionSettings
    from audiosocket_bridge.audiosocket.transcription import stream_options
    from audiosocket_bridge.bridge import session_settings
    from audiosocket_bridge.registrations import CallOptions
    from tests.support.builders import resolved_config as resolved

    assert resolved(["--vocabulary", "Zorblax|Okonkwo"], {}).vocabulary == "Zorblax|Okonkwo"
    assert resolved([], {"AUDIOSOCKET_VOCABULARY": "Zorblax"}).vocabulary == "Zorblax"
    assert resolved([], {}, tmp_path, "[bridge]\nvocabulary = Quentara Pro\n").vocabulary == "Quentara Pro"
    with pytest.raises(ValueError, match="vocabulary"):
        resolved(["--vocabulary", " | "], {})
    settings = session_settings(resolved(["--vocabulary", "Zorblax"], {}))
    assert stream_options(settings, CallOptions()).vocabulary == "Zorblax"
    call = CallOptions.from_fields({"Vocabulary": "Okonkwo|Nakashima"})
    assert stream_options(settings, call).vocabulary == "Okonkwo|Nakashima"
    assert stream_options(SessionSettings(), CallOptions()).vocabulary is None
    with pytest.raises(ValueError, match="vocabulary"):
        CallOptions.from_fields({"vocabulary": "a" * 100})


@pytest.fixture(scope="module")
def order_calls():
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    from benchmarks.vocabulary import PRODUCTS, SENTENCES, SURNAMES
    from audiosocket_bridge.testing.voices import espeak

    return [(phrase, espeak("en-us", SENTENCES[0].format(phrase))) for phrase in PRODUCTS + SURNAMES]


def test_listed_names_are_recalled_more_often_and_other_speech_is_unchanged(tiny_model, order_calls):
    from benchmarks.vocabulary import PRODUCTS, SURNAMES, recall
    from audiosocket_bridge.testing.prompts import english_prompts
    from whisper.transcribe import transcribe_batch

    vocabulary = Vocabulary(PRODUCTS + SURNAMES)
    assert recall(tiny_model, order_calls, vocabulary) >= recall(tiny_model, order_calls, None) + 0.2
    prompts = [p.path for p in english_prompts()[::40][:10]]
    plain = [r["text"] for r in transcribe_batch(tiny_model, prompts, without_timestamps=True)]
    biased = [r["text"] for r in transcribe_batch(tiny_model, prompts, without_timestamps=True, vocabulary=vocabulary)]
    assert sum(a == b for a, b in zip(plain, biased)) >= 9, list(zip(plain, biased))
    assert not any(p.lower() in text.lower() for p in PRODUCTS + SURNAMES for text in biased)


def test_a_stream_with_a_vocabulary_writes_the_listed_name(tiny_model, order_calls):
    from whisper.streaming import EngineOptions, StreamingEngine
    from whisper.streaming.sim import simulate
    from whisper.streaming.types import StreamOptions

    phrase, pcm = next((p, pcm) for p, pcm in order_calls if p == "Quentara")
    engine = StreamingEngine(tiny_model, EngineOptions())
    finals = {}
    for vocabulary in (None, "Zorblax|Quentara|Okonkwo"):
        events = simulate(engine, pcm, 8000, StreamOptions(partials=False, vocabulary=vocabulary))
        finals[vocabulary] = " ".join(e.text for e in events if e.is_final)
    assert phrase not in finals[None] and phrase in finals["Zorblax|Quentara|Okonkwo"], finals
