"""Markdown tables of benchmark results, as docs/performance.md shows them."""

from __future__ import annotations

from collections.abc import Callable

# (key in the row, column title, how to print the value)
Column = tuple[str, str, Callable[[object], str]]


def table(rows: list[dict[str, object]], columns: list[Column]) -> str:
    """The rows as a markdown table; every column but the first is right-aligned."""
    head = "| " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "|" + "|".join("---:" if i else "---" for i in range(len(columns))) + "|"
    body = ["| " + " | ".join(fmt(row[key]) for key, _, fmt in columns) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def num(value: object) -> str:
    assert isinstance(value, int | float)
    return f"{value:,.0f}"


def dec(value: object) -> str:
    assert isinstance(value, int | float)
    return f"{value:,.2f}"


def plain(value: object) -> str:
    return str(value)
