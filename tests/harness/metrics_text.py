"""Reading a Prometheus exposition the way a scraper does: the numbers by series."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Series = tuple[str, frozenset[tuple[str, str]]]


def parse_samples(text: str) -> dict[Series, float]:
    """Every sample of `text` (the text format), by (sample name, its labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class Scrape:
    """One scrape's samples; `value(name, **labels)` is 0 for a series that is not there (as
    Prometheus' ``or vector(0)``), `has` tells whether it is."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = parse_samples(text)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}
