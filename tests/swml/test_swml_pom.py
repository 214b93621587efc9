"""`render_pom` produces exactly the text signalwire_pom (used by signalwire-agents) renders."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from signalwire_pom import PromptObjectModel

from callgate.swml.models import PomSection
from callgate.swml.pom import render_pom


def _sdk(sections: list[dict[str, Any]]) -> str:
    # The SDK mutates its input (it titles untitled sections): give it a copy.
    rendered: str = PromptObjectModel.from_json(copy.deepcopy(sections)).render_markdown()
    return rendered


def test_simple_sections() -> None:
    sections = [
        {"title": "Role", "body": "You are Franklin's assistant."},
        {"title": "Rules", "bullets": ["Be brief", "Never guess a number"]},
    ]
    expected = "## Role\n\nYou are Franklin's assistant.\n\n## Rules\n\n- Be brief\n- Never guess a number\n"
    assert render_pom(sections) == expected == _sdk(sections)


def test_numbering_subsections_and_numbered_bullets() -> None:
    sections = [
        {"body": "Preamble without a title.", "subsections": [{"title": "Inner", "body": "x"}]},
        {
            "title": "Steps",
            "numbered": True,
            "numberedBullets": True,
            "bullets": ["greet", "ask"],
            "subsections": [
                {"title": "A", "body": "a", "numbered": True},
                {"title": "B", "body": "b", "numbered": False},
                {"title": "C", "bullets": ["c"]},
            ],
        },
        {"title": "Plain", "body": "p", "numbered": False},
        {"body": "untitled later section"},
    ]
    text = render_pom(sections)
    assert text == _sdk(sections)
    assert "## 1. Steps" in text and "### 1.1. A" in text and "### 1.3. C" in text
    # The SDK's quirk, kept: a `numbered: false` subsection shows its parent's number.
    assert "### 1. B" in text
    assert "1. greet\n2. ask" in text
    assert "## Plain" in text and "## 3. Untitled Section" in text


def test_models_and_dicts_render_alike() -> None:
    raw = [{"title": "T", "body": "b", "numberedBullets": "true", "bullets": ["x", "y"]}]
    models = [PomSection.model_validate(item) for item in raw]
    assert render_pom(models) == render_pom(raw) == "## T\n\nb\n\n1. x\n2. y\n"


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


def _section(depth: int, *, titled: bool) -> st.SearchStrategy[dict[str, Any]]:
    subsections = (
        st.lists(st.deferred(lambda: _section(depth - 1, titled=True)), max_size=3)
        if depth > 0
        else st.just([])
    )

    def build(
        title: str | None,
        body: str | None,
        bullets: list[str],
        numbered: bool | None,
        numbered_bullets: bool | None,
        subs: list[dict[str, Any]],
    ) -> dict[str, Any]:
        section: dict[str, Any] = {}
        if title is not None:
            section["title"] = title
        if body is not None:
            section["body"] = body
        if bullets:
            section["bullets"] = bullets
        if subs:
            section["subsections"] = subs
        if numbered is not None:
            section["numbered"] = numbered
        if numbered_bullets is not None:
            section["numberedBullets"] = numbered_bullets
        if not (body or bullets or subs):
            section["body"] = "filler"  # the SDK refuses empty sections
        return section

    return st.builds(
        build,
        _text if titled else st.none() | _text,
        st.none() | _text,
        st.lists(_text, max_size=3),
        st.none() | st.booleans(),
        st.none() | st.booleans(),
        subsections,
    )


@settings(max_examples=150, deadline=None)
@given(
    st.tuples(_section(2, titled=False), st.lists(_section(2, titled=False), max_size=3)).map(
        lambda pair: [pair[0], *pair[1]]
    )
)
def test_matches_the_sdk_renderer(sections: list[dict[str, Any]]) -> None:
    assert render_pom(sections) == _sdk(sections)
