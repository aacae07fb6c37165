"""The shipped catalog's subject labels and vendor names, marked for the gettext catalogs.

The pages show a subject as ``t(label)`` (the scripts) or ``_(label)`` (templates), so its
translation must be in the catalogs although the label itself lives in
``routing/data/catalog.toml``; this module is where Babel finds it (``N_`` marks a string
for extraction and returns it as it is). ``tests/test_catalog_labels.py`` fails when the
two differ. The scripts' catalog (:mod:`web.i18n_js`) serves these too. A district that
ships its own catalog (``HH_CATALOG``) adds its labels' translations to the ``.po`` files.
Vendor names are brand names: translators keep them, or add a transliteration.
"""

from __future__ import annotations


def N_(text: str) -> str:
    return text


SUBJECT_LABELS = (
    N_("Math"),
    N_("Algebra"),
    N_("Geometry"),
    N_("Precalculus and trigonometry"),
    N_("Calculus"),
    N_("Statistics"),
    N_("English language arts"),
    N_("Reading"),
    N_("Writing and essays"),
    N_("Science"),
    N_("Biology"),
    N_("Chemistry"),
    N_("Physics"),
    N_("Earth and space science"),
    N_("Social studies"),
    N_("History"),
    N_("Government and civics"),
    N_("Economics"),
    N_("World languages"),
    N_("Computer science"),
    N_("Advanced Placement (AP) courses"),
    N_("Career and job preparation"),
    N_("Study skills"),
    N_("Something else"),
)

VENDOR_NAMES = (
    N_("Paper.co"),
    N_("Tutor.com"),
    N_("BookNook"),
    N_("Carnegie Learning"),
    N_("Cignition"),
    N_("StepUp"),
    N_("Study Smart"),
)
