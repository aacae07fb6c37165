"""BCP 47 language tags, validated and reduced to the primary language subtag for routing."""

from __future__ import annotations

import re

from routing.errors import InvalidLanguageTagError

# RFC 5646 well-formedness for the common "langtag" production (no grandfathered tags):
# language (2-3 letters, optional extlang, or 4-8 letters), script, region, variants,
# extensions and private use.
_LANGTAG = re.compile(
    r"""^
    (?P<language>[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4,8})
    (?:-(?P<script>[a-z]{4}))?
    (?:-(?P<region>[a-z]{2}|[0-9]{3}))?
    (?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*
    (?:-[0-9a-wy-z](?:-[a-z0-9]{2,8})+)*
    (?:-x(?:-[a-z0-9]{1,8})+)?
    $""",
    re.VERBOSE,
)
MAX_TAG_LENGTH = 64


def primary_language(tag: object) -> str:
    """Return the lower-case primary language subtag of a BCP 47 tag (``es-MX`` -> ``es``).

    Underscores are accepted as separators (``zh_Hant`` is common in LMS locales). Raises
    :class:`InvalidLanguageTagError` for anything else, whatever the input's type.
    """
    if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_LENGTH:
        raise InvalidLanguageTagError(f"invalid language tag {tag!r}", value=tag)
    text = tag.strip().replace("_", "-").lower()
    match = _LANGTAG.match(text)
    if match is None:
        raise InvalidLanguageTagError(f"{tag!r} is not a BCP 47 language tag", value=tag)
    return match.group("language").split("-")[0]
