"""The tokenizer at token level: special token ids of both vocabularies, round trips, timestamp tokens."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whisper.tokenizer import get_tokenizer

ENGLISH = get_tokenizer(False)
MULTILINGUAL = get_tokenizer(True, language="en", task="transcribe")


def test_english_only_special_ids():
    tk = ENGLISH
    assert (tk.eot, tk.sot, tk.translate, tk.transcribe) == (50256, 50257, 50357, 50358)
    assert (tk.sot_lm, tk.sot_prev, tk.no_speech, tk.no_timestamps, tk.timestamp_begin) == (
        50359, 50360, 50361, 50362, 50363)  # fmt: skip
    assert tk.sot_sequence == (50257,)
    assert tk.encoding.n_vocab == 51864


def test_multilingual_special_ids():
    tk = MULTILINGUAL
    assert (tk.eot, tk.sot, tk.to_language_token("en"), tk.to_language_token("de")) == (50257, 50258, 50259, 50261)
    assert (tk.translate, tk.transcribe, tk.no_timestamps, tk.timestamp_begin) == (50358, 50359, 50363, 50364)
    assert tk.sot_sequence == (50258, 50259, 50359)
    assert tk.encoding.n_vocab == 51865
    assert get_tokenizer(True, language="German", task="translate").sot_sequence == (50258, 50261, 50358)


def test_known_text_tokens():
    assert ENGLISH.encode(" Please enter your password") == [4222, 3802, 534, 9206]
    assert ENGLISH.decode([4222, 3802, 534, 9206, 11]) == " Please enter your password,"


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40).filter(lambda text: "<|" not in text))
def test_encode_decode_round_trip(text):
    for tokenizer in (ENGLISH, MULTILINGUAL):
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_text_spelling_a_special_token_is_refused():
    # Hypothesis also feeds the source's own literals, such as "<|startofprev|>", to the test above.
    for tokenizer in (ENGLISH, MULTILINGUAL):
        with pytest.raises(ValueError, match="special token"):
            tokenizer.encode("say <|startofprev|> now")


def test_timestamp_tokens_cover_zero_to_thirty_seconds():
    for tk in (ENGLISH, MULTILINGUAL):
        assert tk.decode_with_timestamps([tk.timestamp_begin]) == "<|0.00|>"
        assert tk.decode_with_timestamps([tk.timestamp_begin + 1]) == "<|0.02|>"
        assert tk.decode_with_timestamps([tk.timestamp_begin + 1500]) == "<|30.00|>"
        assert tk.timestamp_begin + 1500 == tk.encoding.n_vocab - 1
        assert tk.decode([tk.timestamp_begin, *tk.encode(" hi"), tk.timestamp_begin + 50]) == " hi"


def test_split_to_word_tokens_keeps_punctuation_apart():
    tokens = ENGLISH.encode(" Hello, world.")
    words, pieces = ENGLISH.split_to_word_tokens(tokens)
    assert words == [" Hello", ",", " world", "."]
    assert sum(pieces, []) == tokens


def test_split_tokens_on_unicode_keeps_characters_whole():
    text = " déjà vu 🦜 鬱"  # the parrot is three byte-level tokens, 鬱 two
    tokens = MULTILINGUAL.encode(text)
    words, pieces = MULTILINGUAL.split_tokens_on_unicode(tokens)
    assert words == [" déjà", " vu", " 🦜", " ", "鬱"]
    assert sum(pieces, []) == tokens and [len(p) for p in pieces] == [1, 1, 3, 1, 2]


def test_split_tokens_on_unicode_gives_an_invalid_byte_its_own_word():
    stray = MULTILINGUAL.encoding.encode_single_token(bytes([0x80]))  # a continuation byte with no lead byte
    tokens = MULTILINGUAL.encode(" a") + [stray] + MULTILINGUAL.encode("鬱")
    words, pieces = MULTILINGUAL.split_tokens_on_unicode(tokens)
    assert words == [" a", "\ufffd", "鬱"] and pieces[1] == [stray]
