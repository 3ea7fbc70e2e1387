"""Word error rate and English normalisation."""
import pytest

from whisper.evaluation import normalize_english, word_edit_distance, word_error_rate


def test_edit_distance():
    assert word_edit_distance("a b c".split(), "a x c d".split()) == 2
    assert word_edit_distance([], "a b".split()) == 2
    assert word_edit_distance("a b".split(), []) == 2


def test_corpus_wer_weights_by_reference_length():
    assert word_error_rate(["a b c d", "e"], ["a b c d", "f"]) == pytest.approx(1 / 5)
    assert word_error_rate(["a"], ["a b c"]) == 2.0


def test_wer_input_errors():
    with pytest.raises(ValueError):
        word_error_rate(["a"], [])
    with pytest.raises(ValueError):
        word_error_rate([""], [""])


def test_normalisation():
    assert normalize_english("Press the Pound key, please!") == "press the pound key please"
    assert normalize_english("twenty five dollars") == normalize_english("$25")
