"""Tables as aligned text or GitHub markdown: one renderer for the tuner's report and every
benchmark (fastloader.bench.harness re-exports both)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["markdown_table", "text_table"]


def text_table(header: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    """Right-aligned columns under a dashed rule."""
    lines = [[str(cell) for cell in line] for line in [header, *rows]]
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(len(header))]
    out = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=False))
           for line in lines]  # fmt: skip
    out.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(out)


def markdown_table(
    header: Sequence[object], rows: Sequence[Sequence[object]], left: int = 0
) -> str:
    """A GitHub table; the first ``left`` columns left-aligned (names), the rest right (figures)."""
    align = ["---" if i < left else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
