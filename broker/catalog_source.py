"""Reading the vendor catalog file (the district's copy, or the one shipped in routing/)."""

from __future__ import annotations

from pathlib import Path

import routing
from broker.errors import ConfigError
from broker.settings import Settings
from routing.catalog import Catalog

SHIPPED_CATALOG = Path(routing.__file__).parent / "data" / "catalog.toml"


def load_catalog(settings: Settings | None = None, path: Path | None = None) -> Catalog:
    """Parse the catalog at ``path``, else ``HH_CATALOG``, else the shipped district catalog."""
    chosen = path or (settings.catalog_path if settings else None) or SHIPPED_CATALOG
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the vendor catalog {chosen}: {exc.strerror}") from exc
    return Catalog.from_toml(text)
