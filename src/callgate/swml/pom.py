"""Render a Prompt Object Model (`prompt.pom`) to the markdown text the signalwire-agents SDK produces.

The rules follow signalwire_pom's renderer: `## Title` headings one level deeper per subsection
(a title-less first section keeps its children at its own level), body then bullets (`- x` or `1. x`
with `numberedBullets`), blank lines between blocks, and — when any sibling is `numbered` — every
titled sibling numbered (`## 1. Title`, `### 1.2. Sub`) unless it says `numbered: false`.
Sections after the first that have no title are titled "Untitled Section", as the SDK does on load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from callgate.swml.models import PomSection

SectionLike = PomSection | Mapping[str, Any]


def render_pom(sections: Sequence[SectionLike]) -> str:
    """The prompt text for `sections` (models or the raw dicts of a document)."""
    parsed = [_as_section(section) for section in sections]
    for index, section in enumerate(parsed):
        if index > 0 and section.title is None:
            parsed[index] = section.model_copy(update={"title": "Untitled Section"})
    any_numbered = any(section.numbered for section in parsed)
    parts: list[str] = []
    counter = 0
    for section in parsed:
        number: list[int] = []
        if section.title is not None:
            counter += 1
            if any_numbered and section.numbered is not False:
                number = [counter]
        parts.append(_render_section(section, level=2, number=number))
    return "\n".join(parts)


def _as_section(value: SectionLike) -> PomSection:
    return value if isinstance(value, PomSection) else PomSection.model_validate(value)


def _render_section(section: PomSection, *, level: int, number: list[int]) -> str:
    lines: list[str] = []
    if section.title is not None:
        prefix = ".".join(str(n) for n in number) + ". " if number else ""
        lines.append(f"{'#' * level} {prefix}{section.title}\n")
    if section.body:
        lines.append(f"{section.body}\n")
    numbered_bullets = bool(section.numbered_bullets)
    for index, bullet in enumerate(section.bullets, 1):
        lines.append(f"{index}. {bullet}" if numbered_bullets else f"- {bullet}")
    if section.bullets:
        lines.append("")
    any_numbered = any(sub.numbered for sub in section.subsections)
    for index, sub in enumerate(section.subsections, 1):
        if section.title is not None or number:
            sub_number = [*number, index] if any_numbered and sub.numbered is not False else number
            sub_level = level + 1
        else:
            # A root section without a title does not open a heading level for its children.
            sub_number, sub_level = number, level
        lines.append(_render_section(sub, level=sub_level, number=sub_number))
    return "\n".join(lines)
