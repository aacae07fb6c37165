"""The decision for single messages: masking keeps everything but the span, hold and
distress rules, sender-specific categories, the heuristics' edges."""

from __future__ import annotations

import pytest

from broker.moderation import Moderator, load_rules
from broker.moderation.engine import Finding, mask


@pytest.fixture(scope="module")
def moderator() -> Moderator:
    return Moderator(load_rules())


def test_masking_replaces_exactly_the_span(moderator: Moderator) -> None:
    text = "ok so call me at 555-123-4567 tonight, thanks!"
    decision = moderator.check(text, "student")
    assert decision.action == "mask"
    assert decision.text == "ok so call me at [removed: phone] tonight, thanks!"
    assert decision.categories == ("phone",)
    [finding] = [f for f in moderator.findings(text, "student") if f.category == "phone"]
    assert text[finding.start : finding.end] == "555-123-4567"


def test_spans_are_in_the_original_text_with_accents_and_wide_characters(
    moderator: Moderator,
) -> None:
    text = "Ñandú dice: mándame un whatsapp, ¿sí? ＡＢＣ pinche tarea"
    found = moderator.findings(text, "student")
    assert {text[f.start : f.end] for f in found} == {"mándame un whatsapp", "pinche"}


def test_two_categories_are_masked_each_with_its_own_token(moderator: Moderator) -> None:
    decision = moderator.check("mi correo es ana@gmail.com y esta tarea es una mierda", "student")
    assert decision.action == "mask"
    assert decision.text == "[removed: email] y esta tarea es una [removed: profanity]"
    assert decision.categories == ("email", "profanity")


def test_overlapping_spans_are_merged() -> None:
    text = "abcdefghij"
    found = [Finding("phone", 2, 6), Finding("social", 4, 8), Finding("link", 9, 10)]
    assert mask(text, found) == "ab[removed: phone]i[removed: link]"


def test_hold_relays_nothing_and_wins_over_mask(moderator: Moderator) -> None:
    decision = moderator.check("call me 555-123-4567 and don't tell your parents", "tutor")
    assert decision.action == "hold"
    assert decision.text == ""
    assert decision.categories == ("grooming", "phone")


def test_distress_alone_is_delivered_with_the_alert(moderator: Moderator) -> None:
    decision = moderator.check("i want to die, i can't do this", "student")
    assert decision == decision.__class__("deliver", "i want to die, i can't do this",
                                          ("distress",), True)  # fmt: skip


def test_distress_with_a_held_category_is_held_and_still_alerts(moderator: Moderator) -> None:
    decision = moderator.check("me quiero morir, no le digas a tu mamá", "student")
    assert decision.action == "hold"
    assert decision.distress is True
    assert decision.categories == ("distress", "grooming")


def test_distress_with_a_mask_keeps_the_alert(moderator: Moderator) -> None:
    decision = moderator.check("my stepdad hits me, call 555-123-4567", "student")
    assert decision.action == "mask" and decision.distress


def test_personal_questions_hold_from_a_tutor_only(moderator: Moderator) -> None:
    for text in ("how old are you?", "¿dónde vives?", "what school do you go to"):
        assert moderator.check(text, "tutor").action == "hold", text
        assert moderator.check(text, "student").action == "deliver", text


def test_a_clean_message_is_the_same_object_back(moderator: Moderator) -> None:
    text = "What is 3/4 + 1/8?"
    decision = moderator.check(text, "student")
    assert decision.action == "deliver" and decision.text is text and decision.categories == ()


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("5551234567", True),  # the whole message is a 10-digit number
        ("the answer is 5551234567", False),  # a 10-digit number with nothing about phones
        ("my number is 5551234567", True),
        ("5551234567 x 1 = 5551234567", False),  # arithmetic next to it
        ("1111111111", False),  # one digit repeated
        ("555 1234", True),  # the whole message: 3-4 digits
        ("the answer is 555 1234", False),
        ("text me 555 1234", True),
        ("page 555-1234", False),
        ("uno dos tres cuatro cinco seis siete", False),  # counting
        ("cinco cinco cinco uno dos tres cuatro", True),
        ("1, 2, 3, 4, 5, 6, 7, 8 call these in order", False),  # a list, not a number
        ("call me: eight oh eight, five five five, one two one two", True),
        ("ISBN 978-0-06-112008-4", False),
        ("+52 55 1234 5678", True),
        ("the civil war was 1861-1865, call it the 1860s", False),  # years from and to
        ("how many sig figs in 0.00450 three?", False),  # a decimal, then a word
        ("what is 555 + 123 4567", False),  # "+" adds, it is no country code
        ("H2SO4 uno dos tres cuatro cinco seis siete", False),  # counting after a formula
        ("la población es 126.014.024, llama la atención", False),  # thousands with dots
        ("call me later, ok? The census of the whole state says 8336817 people", False),
        ("call me later, my number is in the census: 8336817", True),
        ("phone " + "x" * 60 + " 555 123 4567", True),  # the shape alone is a phone
        ("phone " + "x" * 60 + " 5551234567 is the answer", False),  # too far from "phone"
    ],
)
def test_phone_heuristics(moderator: Moderator, text: str, phone: bool) -> None:
    assert ("phone" in moderator.check(text, "student").categories) is phone


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("The White House is at 1600 Pennsylvania Avenue", False),
        ("I live at 1600 Pennsylvania Avenue", True),  # the sender's own: famous or not
        ("I live at 42 Maple Drive", True),
        ("42 Maple Drive is where the party is", True),
        ("Sam walks 4 blocks down Main Street", False),
        ("Calle 5 #23", True),
        ("la calle tiene 5 casas", False),
    ],
)
def test_address_heuristics(moderator: Moderator, text: str, address: bool) -> None:
    assert ("address" in moderator.check(text, "student").categories) is address


@pytest.mark.parametrize(
    ("text", "link"),
    [
        ("see https://en.wikipedia.org/wiki/Photosynthesis", False),  # allow-listed
        ("graph it on www.desmos.com/calculator", False),
        ("go to coolmathgames.com", True),
        ("e.g. 3.14 and i.e. 2.5", False),
        ("run main.py then df.info()", False),
        ("ana@gmail.com", False),  # an email, not also a link
        ("http://192.168.1.5/game", True),
        ("bien.es correcto", False),  # a missing space, not Spain
    ],
)
def test_link_heuristics(moderator: Moderator, text: str, link: bool) -> None:
    assert ("link" in moderator.check(text, "student").categories) is link


def test_profanity_is_whole_word_with_leetspeak(moderator: Moderator) -> None:
    for word in ("sh!t", "$hit", "f*ck", "fuuuck", "f u c k", "m1erda"):
        assert moderator.check(f"ugh {word} ok", "student").categories == ("profanity",), word
    for text in ("Scunthorpe shitake", "assess the class", "the cone (cono) has r = 3"):
        assert moderator.check(text, "student").action == "deliver", text


def test_python_decorators_are_not_handles(moderator: Moderator) -> None:
    assert moderator.check("put @property above the method", "student").action == "deliver"
    assert moderator.check("follow @math_kid22", "student").categories == ("social",)
