"""Model output to safe HTML: Markdown is allowed, HTML is not.

The text is HTML-escaped before Markdown sees it, so `<script>` in an answer (or in a document the model
quotes) is shown as text; nh3 then removes anything outside a small allow-list as a second line of defence.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

import markdown
import nh3

from llm.citations import CITATION_BRACKET, bracket_numbers

_ALLOWED_TAGS = {"p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "blockquote", "a", "mark", "h3", "h4", "table", "thead", "tbody", "tr", "th", "td"}
_ALLOWED_ATTRS = {"a": {"href", "class", "data-n", "title"}, "mark": {"class", "title"}}
# Private-use characters mark unsupported spans through Markdown rendering without being valid Markdown.
_OPEN, _CLOSE = "\ue000", "\ue001"


def _mark_spans(text: str, spans: Sequence[Mapping[str, object]]) -> str:
    out: list[str] = []
    cursor = 0
    for span in sorted(spans, key=lambda s: int(s["start"])):  # type: ignore[call-overload]
        start, end = int(span["start"]), int(span["end"])  # type: ignore[call-overload]
        if start < cursor or end > len(text) or start >= end:
            continue
        out += [text[cursor:start], _OPEN, text[start:end], _CLOSE]
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


def answer_html(
    *, text: str, passage_urls: Mapping[int, str], unsupported: Sequence[Mapping[str, object]] = ()
) -> str:
    """Render an answer: citations [n] become links to their passage; unsupported sentences are marked."""
    marked = _mark_spans(text, unsupported)
    rendered = markdown.markdown(html.escape(marked, quote=False), extensions=["fenced_code", "tables", "sane_lists"])

    def cite(match: re.Match[str]) -> str:
        numbers = bracket_numbers(match.group(1), passage_count=max(passage_urls, default=0))
        if not numbers:
            return match.group(0)  # not a citation of a passage the model was given ([2023], [7] of five)
        return "".join(
            f'<a class="cite" data-n="{n}" href="{html.escape(passage_urls[n])}" title="Open passage {n}">[{n}]</a>'
            if n in passage_urls
            else f"[{n}]"
            for n in numbers
        )

    rendered = CITATION_BRACKET.sub(cite, rendered)
    rendered = rendered.replace(_OPEN, '<mark class="unsupported" title="Not supported by the passages">')
    rendered = rendered.replace(_CLOSE, "</mark>")
    return nh3.clean(rendered, tags=_ALLOWED_TAGS, attributes=_ALLOWED_ATTRS, link_rel="noopener noreferrer")
