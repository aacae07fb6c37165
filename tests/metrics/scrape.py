"""Scraping /metrics over HTTP and reading it with prometheus_client's own text parser."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Scrape:
    """One scrape: every sample, by name and label set."""

    samples: dict[tuple[str, Labels], float]
    help: dict[str, str]

    def value(self, name: str, **labels: str) -> float | None:
        """The sample ``name`` with exactly ``labels``, or None if it is not exposed."""
        return self.samples.get((name, frozenset(labels.items())))

    def count(self, name: str, **labels: str) -> float:
        """A counter's sample, 0 when not exposed yet (a label set never counted)."""
        return self.value(name, **labels) or 0.0

    def names(self, name: str) -> list[dict[str, str]]:
        """The label sets exposed for ``name``."""
        return [dict(labels) for (n, labels) in self.samples if n == name]


def parse(text: str) -> Scrape:
    samples: dict[tuple[str, Labels], float] = {}
    helps: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        helps[family.name] = family.documentation
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"{key} exposed twice"
            samples[key] = sample.value
    return Scrape(samples, helps)


async def scrape(url: str, token: str | None = None) -> Scrape:
    """GET ``url``/metrics (with the bearer ``token``), expecting 200, parsed."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics", headers=headers) as got:
        assert got.status == 200, (got.status, await got.text())
        assert got.headers["Content-Type"].startswith("text/plain")
        return parse(await got.text())
