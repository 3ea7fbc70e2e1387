"""LocalAgreement-2 as a pure policy: partials in, commit points out."""
from __future__ import annotations

from whisper.streaming.agreement import AgreementOptions, LocalAgreement
from whisper.timing import WordTiming


def timed(text: str, duration_s: float):
    words = text.split()
    step_s = duration_s / len(words)
    return lambda: [WordTiming(" " + w, [i], i * step_s, (i + 1) * step_s, 0.9) for i, w in enumerate(words)]


def test_words_two_partials_agree_on_are_committed_up_to_the_margin_and_a_sentence_end():
    agreement = LocalAgreement(AgreementOptions(commit_after_s=5.0, commit_margin_s=1.0, commit_min_words=3))
    first = "please enter your account number. Followed by"
    assert agreement.commit_point(first, 6.0, timed(first, 6.0)) is None  # nothing to agree with yet
    second = "Please enter your account, number. Followed by the pound key"
    commit = agreement.commit_point(second, 7.0, timed(second, 7.0))
    assert commit is not None
    assert commit.text == "Please enter your account, number."  # seven agreed words end by 6 s, a sentence by 3.5 s
    assert commit.end_s <= 7.0 - 1.0 and commit.tokens == list(range(5))


def test_no_commit_ends_inside_a_sentence():
    # Committed mid-sentence, the rest of "Pour écouter vos messages, appuyez sur | un. Vous
    # pouvez ..." was decoded with the cut sentence as its prompt and came out "10.".
    agreement = LocalAgreement(AgreementOptions(commit_after_s=5.0, commit_margin_s=1.0, commit_min_words=3))
    text = "Pour écouter vos messages, appuyez sur un. Vous pouvez en tout temps"
    agreement.commit_point(text, 6.0, timed(text, 6.0))
    assert agreement.commit_point(text, 6.0, timed(text, 6.0)).text == "Pour écouter vos messages, appuyez sur un."
    unpunctuated = "pour écouter vos messages appuyez sur un vous pouvez en tout temps"
    agreement.commit_point(unpunctuated, 6.0, timed(unpunctuated, 6.0))
    assert agreement.commit_point(unpunctuated, 6.0, timed(unpunctuated, 6.0)) is None


def test_short_utterances_and_disagreements_commit_nothing():
    agreement = LocalAgreement(AgreementOptions(commit_after_s=5.0))
    called = []

    def timings():
        called.append(True)
        return []

    agreement.commit_point("press one for sales", 3.0, timings)
    assert agreement.commit_point("press one for sales", 4.0, timings) is None  # under 5 s
    assert agreement.commit_point("dress one for sails", 6.0, timings) is None  # the first word differs
    assert called == [], "word times were aligned for nothing"


def test_restart_forgets_the_previous_partial():
    agreement = LocalAgreement(AgreementOptions(commit_after_s=5.0))
    text = "press one for sales or two for support"
    agreement.commit_point(text, 6.0, timed(text, 6.0))
    agreement.restart()
    assert agreement.commit_point(text, 7.0, timed(text, 7.0)) is None


def test_a_commit_does_not_end_between_two_digits():
    # Decoded alone, the rest of a number cut by a commit lost its digits ("7 3 1" came out "3 1",
    # dropped as no speech): the commit ends before the number, or there is none. Whisper writes
    # digits read with pauses as "4. 6. 9. 2." now and then, each one a sentence.
    def is_digit(word: str) -> bool:
        return word.isdigit()

    agreement = LocalAgreement(AgreementOptions(commit_after_s=5.0, commit_margin_s=1.0, commit_min_words=3))
    agreement.commit_point("4. 6. 9. 2.", 4.0, timed("4. 6. 9. 2.", 4.0), is_digit)
    assert agreement.commit_point("4. 6. 9. 2. 7. 3. 1.", 7.0, timed("4. 6. 9. 2. 7. 3. 1.", 7.0), is_digit) is None
    first = "Your card number, please. 4. 1. 1. 1."
    agreement = LocalAgreement(AgreementOptions(commit_after_s=5.0, commit_margin_s=1.0, commit_min_words=3))
    agreement.commit_point(first, 6.0, timed(first, 6.0), is_digit)
    second = "Your card number, please. 4. 1. 1. 1. 2. 2. 2. 2."
    commit = agreement.commit_point(second, 9.0, timed(second, 9.0), is_digit)
    assert commit is not None and commit.text == "Your card number, please."
    blind = agreement.commit_point(second, 9.0, timed(second, 9.0))  # no digit words known: it commits into the number
    assert blind is not None and blind.text.startswith("Your card number, please. 4. 1.")


def test_nothing_is_committed_by_default():
    agreement = LocalAgreement()
    text = "Thank you for calling. Please enter the number of the extension you wish to reach."
    agreement.commit_point(text, 8.0, timed(text, 8.0))
    assert agreement.commit_point(text, 9.0, timed(text, 9.0)) is None


def test_a_commit_at_a_sentence_end_inside_a_number_is_not_taken():
    # Whisper writes a number read in groups as sentences ("5 5 5. 1 2 3 4."): the commit ends
    # before the number, not at the end of its first group.
    agreement = LocalAgreement(AgreementOptions(commit_after_s=5.0, commit_margin_s=1.0, commit_min_words=3))
    text = "Thank you very much. My number is 5 5 5. 1 2 3 4 and my name"
    agreement.commit_point(text, 8.0, timed(text, 8.0), str.isdigit)
    commit = agreement.commit_point(text, 8.0, timed(text, 8.0), str.isdigit)
    assert commit is not None and commit.text == "Thank you very much."
