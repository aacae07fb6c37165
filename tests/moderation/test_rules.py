"""The rules file: validation errors name the key, the district's allow-list and extra
words take effect, and a changed file is reloaded while a broken one is refused."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from broker.errors import ConfigError
from broker.moderation import Moderator, ReloadingModerator, load_rules
from broker.moderation.rules import SHIPPED_RULES

SHIPPED = SHIPPED_RULES.read_text(encoding="utf-8")


def write(path: Path, text: str, mtime_ns: int) -> Path:
    """Write ``text`` to ``path`` and set its modification time explicitly (no clock luck)."""
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def edited(old: str, new: str) -> str:
    assert old in SHIPPED, old
    return SHIPPED.replace(old, new, 1)


def test_the_shipped_file_loads() -> None:
    rules = load_rules()
    assert rules.source == SHIPPED_RULES
    assert {"phone", "distress", "grooming"} <= rules.categories
    assert rules.actions["distress"] == "deliver" and "distress" in rules.alert


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('phone = "mask"', 'phone = "drop"', "actions.phone: 'drop' is not one of"),
        ('phone = "mask"\n', "", "the built-in category 'phone' needs an action"),
        ('meet = "hold"\n', "", "category 'meet' has no entry in [actions]"),
        ('personal = ["tutor"]', 'personal = ["parent"]', "senders.personal: 'parent'"),
        ('"let\'?s meet"', '"let(s meet"', "locales.en.phrases.meet[0]: the pattern does not"),
        ('"let\'?s meet"', '"Let\'?s meet"', "write patterns in lower case"),
        ('"mierda"', '"hijo de puta"', "'hijo de puta' must be one word"),
        ("version = 1", "version = 2", "key 'version' must be 1"),
        ("[links]", "[linkz]", "unknown top-level key 'linkz'"),
        ('alert = ["distress"]', 'alert = "distress"', "alert must be a list"),
        ('digits = ["zero"', 'digitz = ["zero"', "locales.en: unknown key 'digitz'"),
        ("version = 1", "version = ", "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_with_the_key_named(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = write(tmp_path / "rules.toml", edited(old, new), 1_000_000_000)
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    assert message in caught.value.message
    assert str(path) in caught.value.message


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the moderation rules"):
        load_rules(tmp_path / "absent.toml")


def test_the_allow_list_comes_from_the_file(tmp_path: Path) -> None:
    shipped = Moderator(load_rules())
    text = "the lesson is at https://lms.district.k12.us/course/7 and on nasa.gov"
    assert shipped.check(text, "tutor").categories == ("link",)
    path = write(
        tmp_path / "rules.toml",
        edited('allow = ["lms.example.org",', 'allow = ["district.k12.us", "gov",'),
        1_000_000_000,
    )
    district = Moderator(load_rules(path))
    assert district.check(text, "tutor").action == "deliver"
    assert district.check("see khanacademy.org", "tutor").action == "deliver"
    assert district.check("see lms.example.org", "tutor").categories == ("link",)


def test_a_districts_extra_word_and_phrase_are_caught(tmp_path: Path) -> None:
    path = write(
        tmp_path / "rules.toml",
        edited('profanity = ["mierda",', 'profanity = ["mierda", "baboso", "zorr*",')
        .replace("[locales.es]", "[locales.es]\n", 1)
        .replace('meet = [\n  "nos vemos', 'meet = [\n  "en el recreo te busco", "nos vemos', 1),
        1_000_000_000,
    )
    moderator = Moderator(load_rules(path))
    assert moderator.check("eres un b4b0s0", "student").text == "eres un [removed: profanity]"
    assert moderator.check("zorrita", "student").categories == ("profanity",)
    assert moderator.check("En el recreo te busco", "tutor").action == "hold"
    assert Moderator(load_rules()).check("eres un baboso", "student").action == "deliver"


def test_another_locale_can_be_added(tmp_path: Path) -> None:
    french = (
        '\n[locales.fr]\ndigits = ["zero", "un", "deux", "trois", "quatre", "cinq", "six",'
        ' "sept", "huit", "neuf"]\nat = ["arobase"]\ndot = ["point"]\n'
        '[locales.fr.phrases]\nmeet = ["on se voit (au|a la|chez)"]\n'
        '[locales.fr.words]\nprofanity = ["merde"]\n'
    )
    path = write(tmp_path / "rules.toml", SHIPPED + french, 1_000_000_000)
    moderator = Moderator(load_rules(path))
    assert moderator.check("On se voit au parc ?", "tutor").action == "hold"
    assert moderator.check("c'est de la merde", "student").categories == ("profanity",)
    assert moderator.check("écris à léa arobase gmail point com", "student").categories == (
        "email",
    )


def test_reload_picks_up_a_changed_file(tmp_path: Path) -> None:
    path = write(tmp_path / "rules.toml", SHIPPED, 1_000_000_000)
    moderator = ReloadingModerator(path)
    assert moderator.maybe_reload() is False  # unchanged
    assert moderator.check("go to coolmathgames.com", "student").action == "mask"
    write(path, edited('link = "mask"', 'link = "hold"'), 2_000_000_000)
    assert moderator.maybe_reload() is True
    assert moderator.check("go to coolmathgames.com", "student").action == "hold"
    assert moderator.rules.actions["link"] == "hold"
    assert moderator.maybe_reload() is False


def test_a_broken_file_keeps_the_previous_rules_and_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "rules.toml", SHIPPED, 1_000_000_000)
    moderator = ReloadingModerator(path)
    before = moderator.rules
    write(path, edited('phone = "mask"', 'phone = "shred"'), 2_000_000_000)
    with caplog.at_level(logging.ERROR, logger="broker.moderation.engine"):
        assert moderator.maybe_reload() is False
        assert moderator.maybe_reload() is False
    assert moderator.rules is before
    assert moderator.check("call me 555-123-4567", "student").action == "mask"
    refusals = [r for r in caplog.records if "not reloaded" in r.getMessage()]
    assert len(refusals) == 1 and "'shred'" in refusals[0].getMessage()
    write(path, edited('phone = "mask"', 'phone = "hold"'), 3_000_000_000)
    assert moderator.maybe_reload() is True
    assert moderator.check("call me 555-123-4567", "student").action == "hold"


def test_a_file_removed_after_start_keeps_the_rules(tmp_path: Path) -> None:
    path = write(tmp_path / "rules.toml", SHIPPED, 1_000_000_000)
    moderator = ReloadingModerator(path)
    path.unlink()
    assert moderator.maybe_reload() is False
    assert moderator.check("fuck", "student").action == "mask"


def test_a_bad_file_at_start_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path / "rules.toml", "version = 1\n", 1_000_000_000)
    with pytest.raises(ConfigError, match="needs an action"):
        ReloadingModerator(path)
