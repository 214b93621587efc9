"""The agent document: SWML loaded from YAML/JSON (file or URL) into typed models."""

from callgate.swml.errors import DocumentError, Issue, Severity
from callgate.swml.fetch import CallInfo
from callgate.swml.lines import LineMap
from callgate.swml.loader import (
    LoadResult,
    fetch_document,
    load_document,
    load_text,
    parse_document,
    read_text,
)
from callgate.swml.models import AI, Document, Verb
from callgate.swml.pom import render_pom

__all__ = [
    "AI",
    "CallInfo",
    "Document",
    "DocumentError",
    "Issue",
    "LineMap",
    "LoadResult",
    "Severity",
    "Verb",
    "fetch_document",
    "load_document",
    "load_text",
    "parse_document",
    "read_text",
    "render_pom",
]
