"""The one table printer of visiongates: benchmark rows (dicts) as a Markdown table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["markdown_table"]

Column = str | tuple[str, str, str]  # a row key, or (key, header, format spec)


def markdown_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[Column] | None = None, missing: str = "n/a"
) -> str:
    """`rows` as a Markdown table. `columns`: row keys (the header is the key, floats get 3 significant digits) or
    (key, header, format spec) triples; default: the first row's keys. A missing or None value prints as `missing`."""
    spec = [(c, c, "") if isinstance(c, str) else c for c in (columns or list(rows[0]))]

    def cell(value: Any, fmt: str) -> str:
        if value is None:
            return missing
        if fmt:
            return format(value, fmt)
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header for _, header, _ in spec) + " |", "|" + "---|" * len(spec)]
    lines += ["| " + " | ".join(cell(row.get(key), fmt) for key, _, fmt in spec) + " |" for row in rows]
    return "\n".join(lines)
