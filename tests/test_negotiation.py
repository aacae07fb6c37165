"""Which language a page speaks (web/negotiation.py, i18n.match): the order of the hints and
CLDR's regional fallbacks (issue 13)."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

import i18n
from broker.settings import Settings
from web.keys import SETTINGS
from web.negotiation import accept_languages, page_locale


@pytest.mark.parametrize(
    ("tag", "shipped"),
    [
        ("es-MX", "es"), ("es_419", "es"), ("zh-TW", "zh_Hant"), ("zh-HK", "zh_Hant"),
        ("zh-Hant", "zh_Hant"), ("zh-CN", "zh_Hans"), ("zh", "zh_Hans"), ("zh-SG", "zh_Hans"),
        ("fil", "tl"), ("tl-PH", "tl"), ("fr-CA", "fr"), ("ar-EG", "ar"), ("fa-IR", "fa"),
        ("hy-AM", "hy"), ("ko-KR", "ko"), ("vi-VN", "vi"), ("ru-RU", "ru"), ("en-GB", "en"),
    ],
)
def test_regional_tags_fall_back_to_a_shipped_catalog(tag: str, shipped: str) -> None:
    assert i18n.match(tag) == shipped


@pytest.mark.parametrize("tag", ["", "xx", "de-DE", "not a tag", "en-XA"])
def test_unknown_tags_match_nothing(tag: str) -> None:
    assert i18n.match(tag) is None  # en-XA only with HH_PSEUDO_LOCALE=1
    assert i18n.negotiate(tag) == "en"


def test_the_pseudo_locale_only_when_turned_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HH_PSEUDO_LOCALE", "1")
    assert i18n.match("en-XA") == "en_XA"
    assert i18n.translator("en-XA").gettext("Homework Help").startswith("⟦")


def _request(path: str, *, headers: dict[str, str] | None = None,
             cookie: str | None = None, default: str = "en") -> web.Request:
    hdrs = dict(headers or {})
    if cookie:
        hdrs["Cookie"] = f"hh_lang={cookie}"
    app = web.Application()
    app[SETTINGS] = Settings(default_locale=default)
    return make_mocked_request("GET", path, headers=hdrs, app=app)


def test_the_order_of_the_hints() -> None:
    browser = {"Accept-Language": "de-DE, fr-CA;q=0.9, en;q=0.5"}
    # the browser's first tag a catalog serves (German has none): French
    assert page_locale(_request("/widget", headers=browser)) == "fr"
    # the launch's locale beats the browser
    assert page_locale(_request("/widget", headers=browser), "ko-KR") == "ko"
    assert page_locale(_request("/widget?launch_lang=vi", headers=browser)) == "vi"
    # the person's own choice beats both, from the menu or kept in the cookie
    assert page_locale(_request("/widget?lang=ar", headers=browser), "ko-KR") == "ar"
    assert page_locale(_request("/widget", headers=browser, cookie="zh-Hant"), "ko") == "zh_Hant"
    # nothing usable: the district's default
    assert page_locale(_request("/widget", headers={"Accept-Language": "de"}, default="es")) == "es"
    assert page_locale(_request("/widget?lang=xx", cookie="nope")) == "en"


def test_accept_language_is_read_in_preference_order() -> None:
    request = make_mocked_request(
        "GET", "/", headers={"Accept-Language": "en;q=0.2, ar, fr;q=0.8, *;q=0.1, es;q=0"}
    )
    assert accept_languages(request) == ["ar", "fr", "en"]


def test_direction_and_html_tags() -> None:
    assert [i18n.direction(x) for x in ("ar", "fa", "hy", "zh_Hant")] == [
        "rtl", "rtl", "ltr", "ltr"
    ]
    assert i18n.html_lang("zh_Hant") == "zh-Hant"
