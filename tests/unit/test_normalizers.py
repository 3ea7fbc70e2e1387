"""whisper.normalizers: what a transcript is scored as. Spoken numbers, money, spellings,
contractions and annotations, and the Asterisk prompt texts written as words or as digits."""
import gzip

import pytest

from whisper.normalizers import BasicTextNormalizer, EnglishTextNormalizer
from whisper.normalizers.english import EnglishNumberNormalizer, EnglishSpellingNormalizer

ENGLISH = EnglishTextNormalizer()
NUMBERS = EnglishNumberNormalizer()


@pytest.mark.parametrize("spoken, written", [
    ("my pin is four seven one one", "my pin is 4711"),
    ("call nine one one now", "call 911 now"),
    ("room two o eight", "room 208"),
    ("the nineteen eighties", "the 1980s"),
    ("one hundred and five thousand", "105000"),
    ("twelve dollars and five cents", "$12.05"),
    ("ten pounds", "£10"),
    ("a point of order", "a point of order"),  # "point" with no digits after it is a word
    ("minus the fees", "minus the fees"),
    ("the twenty first of may", "the 21st of may"),
    ("eleventh hour", "11th hour"),
    ("one and a half", "1.5"),
])  # fmt: skip
def test_spoken_numbers(spoken, written):
    assert NUMBERS(spoken) == written


def test_money_and_punctuation_in_written_numbers():
    assert ENGLISH("It costs $1,250.50 — really?") == "it costs $1250.50 really"
    assert ENGLISH("Call 555-1234.") == "call 555 1234"
    assert ENGLISH("Pi is 3.14, isn't it?") == "pi is 3.14 is not it"


def test_fillers_annotations_and_contractions():
    assert ENGLISH("Um, so [laughs] I won't go (coughs), uh, we'd better not") == "so i will not go we had better not"
    assert ENGLISH("They're sure it's John's car") == "they are sure it is john s car"


def test_spellings_become_one():
    spelling = EnglishSpellingNormalizer()
    assert spelling("the colour of the centre") == "the color of the center"
    assert spelling("we analysed the catalogue and travelled") == "we analyzed the catalog and traveled"
    assert spelling("grey skies") == "grey skies"  # no regular rule relates grey and gray: left as it is
    assert ENGLISH("The Organisation's Programme") == "the organization s program"


def test_basic_normalizer():
    assert BasicTextNormalizer()("Héllo, Wörld! (noise) ça va?") == "héllo wörld ça va"
    assert BasicTextNormalizer(remove_diacritics=True)("Héllo, Wörld! Øre") == "hello world ore"
    assert BasicTextNormalizer(split_letters=True)("東京です") == "東 京 で す"


def test_prompt_texts_with_digits_and_words_normalise_alike():
    """Asterisk's prompt texts write menu digits both ways ("press one", "press 1"); scored, they match."""
    with gzip.open("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz", "rt", errors="replace") as lines:
        texts = [line.split(":", 1)[1] for line in lines if ":" in line and not line.startswith(";")]
    normalised = [ENGLISH(text) for text in texts]
    press = [n for n in normalised if " press " in f" {n} "]
    assert len(press) > 20
    assert not any(f"press {word}" in n for n in press for word in ("one", "two", "three", "zero", "nine"))
    assert all(n == n.strip() and "  " not in n and n == n.lower() for n in normalised)
    assert not any(ch in n for n in normalised for ch in ",;:!?\"()[]")
