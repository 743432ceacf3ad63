"""Parsers as components: one per file type, picked by the media type sniffed from the file's bytes.

settings.PARSERS lists them (a dotted class path and options each); adding a file type is one parser
module and one entry there.
"""

from __future__ import annotations

from django.conf import settings

from ingestion.exceptions import DocumentRejected
from ingestion.parsers.base import ParsedDocument, Parser, TextUnit
from ingestion.parsers.sniff import media_type_advice, media_type_describe, media_type_read, media_type_sniff
from ragsite.components import component_at

__all__ = [
    "ParsedDocument", "Parser", "TextUnit", "media_type_read", "media_type_sniff", "parser_for", "parsers",
    "parsers_accept", "parsers_accepted",
]


def parsers() -> list[Parser]:
    """This process's parsers, in settings order (built once, loaded by their warm_up)."""
    return [component_at(spec["class"], **spec.get("options", {})) for spec in settings.PARSERS]


def parser_for(*, media_type: str) -> Parser:
    """The parser of `media_type`, or DocumentRejected naming what the file is and what is accepted."""
    available = parsers()
    for parser in available:
        if media_type in parser.media_types:
            return parser
    if media_type == "application/x-empty":
        raise DocumentRejected("File is empty (0 bytes): upload the file again", code="empty")
    advice = media_type_advice(media_type, accepted=parsers_accepted())
    raise DocumentRejected(
        f"This file is {media_type_describe(media_type)}, which cannot be read: {advice}", code="unsupported_type"
    )


def parsers_accept() -> str:
    """The upload input's `accept` list: every parser's media types and extensions."""
    return ",".join(dict.fromkeys(item for p in parsers() for item in (*p.media_types, *p.extensions)))


def parsers_accepted() -> str:
    """What may be uploaded, for people: 'PDF, Word document (.docx), ... or text file (.txt)'."""
    labels = [p.label for p in parsers()]
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} or {labels[-1]}"
