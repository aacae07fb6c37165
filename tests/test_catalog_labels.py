"""The shipped catalog's subject labels and vendor names are all marked for translation."""

from __future__ import annotations

from pathlib import Path

from routing.catalog import Catalog
from web.catalog_labels import SUBJECT_LABELS, VENDOR_NAMES
from web.i18n_js import js_catalog

CATALOG = Catalog.from_toml(
    (Path(__file__).resolve().parents[1] / "routing" / "data" / "catalog.toml").read_text()
)


def test_every_subject_label_and_vendor_name_is_marked() -> None:
    assert sorted(SUBJECT_LABELS) == sorted(label for _, label in CATALOG.subjects)
    assert sorted(VENDOR_NAMES) == sorted(v.name for v in CATALOG.vendors)


def test_the_scripts_get_the_subject_labels_translated() -> None:
    messages = js_catalog("es")["messages"]
    assert messages["Math"] != "Math" and messages["World languages"]
    assert all(label in messages for label in SUBJECT_LABELS)
