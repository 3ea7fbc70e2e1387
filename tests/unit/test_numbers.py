"""A digit string read with pauses is a number read aloud: never decimals, its "oh" a zero."""
import pytest

from whisper.numbers import digits_as_numerals, is_digit_string, pieces_as_numerals


@pytest.mark.parametrize("text, written", [
    (" 886.5 or 0.380.", " 886 5 0 0 380."),  # 8 8 6 5 oh 0 3 8 0, as base wrote it for a caller
    (" 5 O 3 2 1 1 9 4", " 5 0 3 2 1 1 9 4"),
    (" 4.5 6", " 4 5 6"),  # decimals in more than one number: pauses
    (" 555 or 1234", " 555 0 1234"),  # seven digits: a phone number
    (" Four, seven, oh, 1.", " 4, 7, 0, 1."),
])  # fmt: skip
def test_a_digit_string_has_no_decimal_points_and_its_oh_is_zero(text, written):
    assert digits_as_numerals(text) == written
    assert is_digit_string(text)
    pieces = [" " + word for word in text.split()]  # an utterance's timed words say the same
    assert "".join(pieces_as_numerals(pieces)) == written


@pytest.mark.parametrize("text", [
    " 3.5", " 0.380", " 1 or 2", " 100 or 200",  # a lone decimal, a choice
    " It costs 3.50", " Call 555 or 1234 please",  # other words: not a digit string
    " Or.", " 1 or", " 4, 7, 1, 1.", " 5 O 3 2 1 1",  # an "O" among six digits: could be a letter
])  # fmt: skip
def test_other_numbers_are_left_as_written(text):
    assert digits_as_numerals(text) == text


def test_zero_sounds_are_only_english():
    assert digits_as_numerals(" 5 o 3 2 1 1 9", "es") == " 5 o 3 2 1 1 9"
