"""Redaction (audiosocket_bridge/redaction.py), pure: card numbers whole or in groups across
finals, spoken as digits or words, with their security code and expiry; what must stay (phone and
order numbers, dates, amounts); partials; word timings; DTMF; the IVR's clear channel text."""
from __future__ import annotations

import pytest

from audiosocket_bridge.redaction import (CallRedactor, channel_text, check_policy, luhn_valid,
                                          redact_dtmf)
from whisper.streaming.types import TranscriptEvent, Word

VISA = "4111111111111111"  # a test card number, Luhn-valid


def final(text: str, index: int = 0, start_s: float = 0.0, words=()) -> TranscriptEvent:
    return TranscriptEvent("s", "final", index, text, start_s, start_s + 2.0, "en", -0.2, 0.01,
                           tuple(words))


def partial(text: str, start_s: float = 0.0) -> TranscriptEvent:
    return TranscriptEvent("s", "partial", 0, text, start_s, start_s + 1.0, "en", -0.2, 0.01)


def texts_of_call(texts, policy="pci", gap_s=3.0):
    """Each text a final, gap_s apart; what the sinks get, in order, once the call ends."""
    redactor, out = CallRedactor(policy), []
    for index, text in enumerate(texts):
        out += redactor.final(final(text, index, index * gap_s), index * gap_s)
    return [e.text for e in out + redactor.flush()]


def digits_in(texts) -> str:
    return "".join(c for t in texts for c in t if c.isdigit())


def test_luhn():
    assert luhn_valid(VISA) and luhn_valid("378282246310005") and not luhn_valid("4111111111111112")


@pytest.mark.parametrize("said", [
    " My card number is 4111 1111 1111 1111.",
    " 4111-1111-1111-1111",
    " It's 4111111111111111, expiry 12/27.",
    " four one one one one one one one one one one one one one one one",
    " My Visa is 4111 1111 1111 1112.",  # a wrong check digit: still a card after "visa"
    " 3782 822463 10005",  # Amex grouping
    " 4,539 1,488 0,343 6,467",  # thousands commas
    " 4539 1488.0 343.6467",  # misheard as decimals
])
def test_a_card_number_read_in_one_final_is_replaced(said):
    out = texts_of_call([said])
    assert "[card]" in out[0], out
    assert len(digits_in(out)) <= 2, out  # at most an expiry's month/year digits were said after it


def test_a_card_read_in_groups_across_finals_is_replaced_in_every_final():
    out = texts_of_call([" My card number is", " 4111", " 1111", " 1111 1111.",
                         " The security code is 737.", " It expires 12/27."])
    assert digits_in(out) == "", out
    assert out[1:4] == [" [card]", " [card]", " [card]."]
    assert "[cvv]" in out[4] and "[expiry]" in out[5]


def test_groups_without_a_card_word_are_held_together_and_replaced():
    out = texts_of_call([" 4111 1111", " 1111 1111", " Thank you."])
    assert out == [" [card]", " [card]", " Thank you."]


@pytest.mark.parametrize("said", [
    " Call me back on 555 123 4567 please.",
    " My order number is 1234 5678 9012.",
    " The meeting is on 12 03 2026 at 10.",
    " That will be 1,234.56 dollars.",
    " We sold 1,200 units in 2025.",
    " Press 1 to mute, 4 or 6 to change the volume.",
    " My phone is 0044 20 7946 0958.",
])
def test_near_misses_are_kept(said):
    out = texts_of_call([said])
    assert out == [said]


def test_a_number_at_the_end_of_a_final_is_held_only_until_the_next_final_or_the_hold():
    redactor = CallRedactor("pci", hold_s=6.0)
    assert redactor.final(final(" My account is 1234 5678"), 0.0) == []
    assert not redactor.due(5.9) and redactor.due(6.0)
    assert [e.text for e in redactor.flush()] == [" My account is 1234 5678"]
    out = redactor.final(final(" And that is all.", 1), 7.0)
    assert [e.text for e in out] == [" And that is all."]


def test_an_order_number_is_not_held():
    redactor = CallRedactor("pci")
    assert [e.text for e in redactor.final(final(" Order 1234 5678"), 0.0)] == [" Order 1234 5678"]


def test_partials_never_show_four_digits_in_a_row():
    redactor = CallRedactor("pci")
    assert redactor.partial(partial(" my card is 4111 11")).text == " my card is [number]"
    assert redactor.partial(partial(" press 1 or 2")).text == " press 1 or 2"
    redactor.final(final(" 4111 1111"), 0.0)  # held: a partial going on with it hides its digits
    assert redactor.partial(partial(" 11", 3.0)).text == " [number]"


def test_word_timings_of_a_redacted_span():
    words = [Word(" Card", 0.0, 0.4, 0.9), Word(" 4111", 0.5, 1.0, 0.8), Word(" 1111", 1.1, 1.6, 0.7),
             Word(" 1111", 1.7, 2.2, 0.9), Word(" 1111.", 2.3, 2.8, 0.6)]
    out = CallRedactor("pci").final(final("".join(w.text for w in words), words=words), 0.0)
    assert out[0].text == " Card [card]."
    assert [(w.text, w.start_s, w.end_s, w.probability) for w in out[0].words] == [
        (" Card", 0.0, 0.4, 0.9), (" [card].", 0.5, 2.8, 0.6)]


def test_pii_also_replaces_emails_long_numbers_and_ids():
    out = texts_of_call([" Mail me at john.smith@example.com or john at example dot com.",
                         " My social is 123-45-6789 and my passport X1234567."], policy="pii")
    assert out == [" Mail me at [email] or [email].", " My social is [number] and my passport [id]."]
    assert texts_of_call([" Mail john.smith@example.com"], policy="pci") == [" Mail john.smith@example.com"]


def test_off_changes_nothing():
    assert texts_of_call([" 4111 1111 1111 1111"], policy="off") == [" 4111 1111 1111 1111"]


def test_ivr_calls_keep_the_clear_answer_for_the_channel_only():
    redactor = CallRedactor("pci", ivr=True)
    (out,) = redactor.final(final(" 4111 1111 1111 1111"), 0.0)
    assert out.text == " [card]" and channel_text(out) == " 4111 1111 1111 1111"
    (account,) = redactor.final(final(" 40719", 1), 1.0)  # not held: the IVR waits for it
    assert account.text == " [number]" and channel_text(account) == " 40719"
    (short,) = redactor.final(final(" 1 2", 2), 2.0)
    assert short.text == " 1 2"


def test_dtmf_runs_of_four_or_more_digits_are_masked():
    typed = [(0.0, "1"), (5.0, "4"), (5.2, "1"), (5.4, "1"), (5.6, "1"), (5.8, "#"), (9.0, "2")]
    assert redact_dtmf(typed, "pci") == [(0.0, "X"), (5.0, "X"), (5.2, "X"), (5.4, "X"),
                                         (5.6, "X"), (5.8, "#"), (9.0, "2")]
    assert redact_dtmf([(0.0, "1"), (1.0, "#")], "pci") == [(0.0, "1"), (1.0, "#")]
    assert redact_dtmf(typed, "off") == typed


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="unknown redaction policy 'pcii'"):
        check_policy("pcii")


def test_digit_homophones_count_only_among_digits():
    assert texts_of_call([" My card number is 5 0 to 8 1 0 7 3 3 5 0 5 1 8 9 6 8."]) == [
        " My card number is [card]."]
    assert texts_of_call([" I want to go for a walk."]) == [" I want to go for a walk."]


def test_a_card_in_timed_words_split_at_punctuation_is_found():
    """Timed words split where the text does not ("971-0" as " 971" and "-0"; a lone "-")."""
    groups = [[" 5,", " 6,", " 0,", " 4."], [" 9", " 8", " 0", " 0"], [" 971", "-0"],
              [" 1,", " 8,", " -", " 5"]]
    redactor, out = CallRedactor("pci"), []
    for index, texts in enumerate(groups):
        words = [Word(t, index * 3.0 + k * 0.3, index * 3.0 + k * 0.3 + 0.2, 0.9)
                 for k, t in enumerate(texts)]
        out += redactor.final(final("".join(texts), index, index * 3.0, words), index * 3.0)
    assert [e.text for e in out] == [" [card].", " [card]", " [card]", " [card]"]


def test_a_card_misheard_as_decimals_after_a_misheard_card_word_is_found():
    said = " McCard in 5.3, 8.0, 3.0, 1.4.7, 8.7, 5.1, McCard in 4.3.0."
    assert texts_of_call([said]) == [" McCard in [card], McCard in [cvv]."]


def test_thirteen_digits_or_more_are_a_card_unless_a_word_says_otherwise():
    assert texts_of_call([" It's 4539 1488 0343 6."]) == [" It's [card]."]  # a digit dropped
    assert texts_of_call([" Order 4539 1488 0343 6."]) == [" Order 4539 1488 0343 6."]
    assert texts_of_call([" My phone is 0044 20 7946 0958 1."]) == [" My phone is 0044 20 7946 0958 1."]


def test_a_partial_hides_a_number_half_written_as_a_word():
    assert CallRedactor("pci").partial(partial(" The current in 5.963A")).text == " The current in [number]"


def test_a_digit_word_misspelt_among_digits_still_counts():
    """base wrote Asterisk's Spanish "nueve" as "Nuebe"; the next final read the rest."""
    assert texts_of_call([" Seis Nuebe Cinco Nuebe", " 1, 2, 2, 9, 0, 0, 1, 6, 4, 0, 7"]) == [
        " [card]", " [card]"]
    assert texts_of_call([" Nuebe casas."]) == [" Nuebe casas."]


def test_partials_of_more_digits_extend_the_hold_and_a_timed_out_hold_carries_its_digits():
    redactor = CallRedactor("pci", hold_s=6.0)
    assert redactor.final(final(" 4, 5, 3, 9"), 3.0) == []
    redactor.partial(partial(" 1, 4, 8", 5.0), 8.0)  # the caller reads on: held 6 s from now
    assert not redactor.due(12.0) and redactor.due(14.0)
    out = redactor.final(final(" 1, 4, 8, 8, 0, 3, 4, 3, 6, 4, 6, 7", 1, 5.0), 13.0)
    assert [e.text for e in out] == [" [card]", " [card]"]

    late = CallRedactor("pci", hold_s=6.0)  # no partials: the hold times out, its digits carry
    late.final(final(" 4, 5, 3, 9"), 3.0)
    assert [e.text for e in late.flush()] == [" 4, 5, 3, 9"]
    out = late.final(final(" 1, 4, 8, 8, 0, 3, 4, 3, 6, 4, 6, 7", 1, 9.0), 20.0)
    assert [e.text for e in out] == [" [card]"]
    order = CallRedactor("pci")  # an order number's digits are not carried
    order.final(final(" Order 1234 5678"), 0.0)
    assert order.final(final(" 9012 3456 7", 1), 3.0) == []  # held: it may be a card's start
    assert [e.text for e in order.flush()] == [" 9012 3456 7"]
