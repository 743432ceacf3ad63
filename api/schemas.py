"""Request and response bodies of the REST API (they are the OpenAPI schema), and their builders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Literal

from django.urls import reverse
from ninja import Schema
from pydantic import ConfigDict, Field

from chat.records import DOCUMENT_DELETED, AnswerView, Source
from chat.services import MAX_QUESTION_CHARS
from ingestion.models import Collection, Document
from ingestion.services import UploadOutcome, document_state

MAX_TOP_K = 20
MAX_ID = 2**63 - 1  # the database's bigint: larger ids are simply not found, never a database error
# PostgreSQL text cannot hold NUL; saying so in the schema makes such input a 422, not a 500.
NO_NUL = r"^[^\x00]*$"
# At least one character that is not whitespace (a question of only spaces is empty).
NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"
# JSON bodies are taken as typed: `"stream": 0` or `"top_k": "3"` is a 422, not silently converted.
STRICT = ConfigDict(strict=True)
AnswerStatus = Literal["pending", "streaming", "done", "failed"]
DocumentStatus = Literal["queued", "processing", "ready", "failed"]


class ErrorDetail(Schema):
    code: str = Field(description="Stable, for programs: e.g. invalid_api_key, rate_limited, answer_timeout")
    message: str = Field(description="For people: what is wrong and what to do")
    answer_id: int | None = Field(None, description="On answer_timeout/answer_failed: fetch it at GET answers/{id}")
    errors: list[dict[str, object]] | None = Field(None, description="On validation_error: where and why")


class ErrorOut(Schema):
    error: ErrorDetail


class TurnIn(Schema):
    model_config = STRICT
    question: str = Field(max_length=4000, pattern=NO_NUL)
    answer: str = Field(max_length=20000, pattern=NO_NUL)


class AskIn(Schema):
    model_config = STRICT
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS, pattern=NOT_BLANK)
    collection: str | None = Field(
        None, max_length=200, pattern=NO_NUL, description="Collection slug; optional with a conversation"
    )
    conversation: int | None = Field(None, ge=1, le=MAX_ID, description="Continue this conversation (this key's)")
    top_k: int | None = Field(None, ge=1, le=MAX_TOP_K, description="Passages given to the model")
    stream: bool = Field(False, description="true: server-sent events token, done, grounding (or error)")
    history: list[TurnIn] | None = Field(
        None, max_length=50,
        description="Earlier exchanges held by the client, oldest first, for a new conversation (not with "
        "`conversation`): the last few become its history, so a follow-up gets a standalone search query",
    )


class SearchIn(Schema):
    model_config = STRICT
    question: str = Field(min_length=1, max_length=4000, pattern=NOT_BLANK)
    collection: str = Field(max_length=200, pattern=NO_NUL, description="Collection slug")
    top_k: int = Field(5, ge=1, le=MAX_TOP_K, description="Passages to return, best first")


class PassageOut(Schema):
    chunk_id: int
    document_id: int
    document: str = Field(description="The document's file name")
    page: int
    page_end: int
    text: str
    score: float = Field(description="Cosine similarity of the passage to the question")


class SearchOut(Schema):
    collection: str
    passages: list[PassageOut]


class HighlightOut(Schema):
    page: int
    x0: float = Field(ge=0, le=1, description="Left edge, as a share of the page's width (0 = left)")
    y0: float = Field(ge=0, le=1, description="Top edge, as a share of the page's height (0 = top)")
    x1: float = Field(ge=0, le=1, description="Right edge")
    y1: float = Field(ge=0, le=1, description="Bottom edge")


class CitationOut(Schema):
    n: int = Field(description="The number the answer cites it by, as [n]")
    cited: bool
    document_id: int
    document: str
    page: int = Field(description="The first page; for a document of sections (Word, HTML, Markdown, text) the section's position")
    page_end: int
    section: str = Field(
        default="", description="The section's title, for documents of sections; '' for PDF pages (cite `page`)"
    )
    where: str = Field(description="How a citation names the place: 'p. 4', 'pp. 4-5', or the section's title")
    text: str = Field(description="The passage as the model was given it (kept with the answer: re-indexing never changes it)")
    score: float
    media_type: str = Field(description="The document's file type; application/pdf has page images")
    highlights: list[HighlightOut] = Field(
        description="Where the text sits on its page(s), kept with the answer: draw them over the page image "
        "(coordinates are shares of the page, so any image size fits)"
    )
    document_deleted: bool = Field(description="true: the document was deleted since; text and highlights remain")
    message: str | None = Field(description="For people: why there is no page or file to show, if so")
    file_url: str | None = Field(description="GET it for the original file (null once the document is deleted)")
    page_image_url: str | None = Field(description="GET it for the cited page as a PNG (null without page images)")


class UnsupportedSpan(Schema):
    start: int
    end: int
    text: str
    support: float


class GroundingOut(Schema):
    status: Literal["scored", "unscored", "failed"] = Field(
        description="scored; unscored: the scorer gave no verdict (neither grounded nor flagged); failed: it crashed"
    )
    score: float | None = Field(description="0..1, higher is better supported; null unless scored")
    flagged: bool | None = Field(description="true: possibly not grounded; null unless scored")
    threshold: float | None
    unsupported: list[UnsupportedSpan]


class TimingsOut(Schema):
    retrieval_ms: float | None
    ttft_ms: float | None
    generation_ms: float | None
    grounding_ms: float | None
    total_ms: float | None
    tokens_per_second: float | None


class EvidenceOut(Schema):
    text: str = Field(description="The documents' own sentences that best answer the question, each cited [n]")
    citations: list[CitationOut] = Field(description="The passages it quotes, in order of first use")


class AnswerOut(Schema):
    id: int
    conversation: int
    collection: str
    status: AnswerStatus
    question: str
    answer: str = Field(description="The text to show: the model's answer, or the evidence when `shown` is evidence")
    text: str = Field(description="The model's answer, whichever text was shown")
    shown: Literal["answer", "evidence"] = Field(
        description="Which text `answer` holds: evidence replaces a flagged answer under RAG_GROUNDING_POLICY=withhold"
    )
    evidence: EvidenceOut | None = Field(
        description="What the documents say: the extractive answer to the question over the same passages, given "
        "when grounding flags the answer (RAG_GROUNDING_POLICY evidence or withhold); null otherwise"
    )
    error: str
    citations: list[CitationOut] = Field(description="The passages the answer cites, in order of first use")
    passages: list[CitationOut] = Field(description="Every passage the model was given")
    grounding: GroundingOut | None = Field(description="null until grounding is settled (just after the answer)")
    timings: TimingsOut
    model: str
    feedback: Literal["up", "down"] | None
    created_at: datetime
    finished_at: datetime | None


class FeedbackIn(Schema):
    model_config = STRICT
    value: Literal["up", "down"]
    comment: str = Field("", max_length=2000, pattern=NO_NUL)


class PageQuery(Schema):
    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=MAX_ID)


class DocumentFilter(PageQuery):
    collection: str | None = Field(None, max_length=200, pattern=NO_NUL, description="Collection slug")
    status: DocumentStatus | None = None


class ConversationFilter(PageQuery):
    collection: str | None = Field(None, max_length=200, pattern=NO_NUL, description="Collection slug")


class ConversationOut(Schema):
    id: int
    collection: str
    title: str
    created_at: datetime
    updated_at: datetime


class ConversationDetailOut(ConversationOut):
    answers: list[AnswerOut]


class CollectionOut(Schema):
    slug: str
    name: str
    description: str


class DocumentOut(Schema):
    id: int
    name: str
    collection: str
    status: DocumentStatus
    progress: float
    stage: str
    page_count: int | None = Field(description="Pages, or sections for documents without pages (see `unit`)")
    unit: Literal["page", "section"] = Field(description="What the document's passages cite: pages (PDF) or sections")
    size: int
    error: str
    error_code: str
    warnings: list[str]
    created_at: datetime
    finished_at: datetime | None


class DocumentPage(Schema):
    count: int
    items: list[DocumentOut]


class ConversationPage(Schema):
    count: int
    items: list[ConversationOut]


class UploadOut(Schema):
    created: bool = Field(description="false: the same file was already in the collection")
    message: str
    document: DocumentOut


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _citation_links(source: Source) -> tuple[str | None, str | None, str | None]:
    """(file URL, page image URL, message) of a citation."""
    record = source.record
    if source.document_deleted:
        return None, None, DOCUMENT_DELETED
    file_url = reverse("api:document_file", kwargs={"document_id": record.document_id})
    if not record.has_page_images:
        return file_url, None, "This document has no page images (it is not a PDF): download the file"
    page = record.boxes[0].page if record.boxes else record.page_start
    return file_url, reverse("api:document_page", kwargs={"document_id": record.document_id, "number": page}), None


def citations_out(sources: Sequence[Source]) -> list[CitationOut]:
    out = []
    for s in sources:
        file_url, page_image_url, message = _citation_links(s)
        out.append(
            CitationOut(
                n=s.record.n, cited=s.cited, document_id=s.record.document_id, document=s.record.document_name,
                page=s.record.page_start, page_end=s.record.page_end, section=s.record.section, where=s.record.where,
                score=s.record.score, text=s.record.text, media_type=s.record.media_type,
                highlights=[HighlightOut(page=b.page, x0=b.x0, y0=b.y0, x1=b.x1, y1=b.y1) for b in s.record.boxes],
                document_deleted=s.document_deleted, message=message, file_url=file_url,
                page_image_url=page_image_url,
            )
        )
    return out


def grounding_out(view: AnswerView) -> GroundingOut | None:
    g = view.grounding
    if g is None:
        return None
    unsupported = [UnsupportedSpan.model_validate(span) for span in g.unsupported]
    return GroundingOut(status=g.status, score=g.score, flagged=g.flagged, threshold=g.threshold, unsupported=unsupported)


def evidence_out(view: AnswerView) -> EvidenceOut | None:
    e = view.evidence
    return None if e is None else EvidenceOut(text=e.text, citations=citations_out(e.citations))


def answer_out(view: AnswerView) -> AnswerOut:
    a = view.answer
    total = (a.finished_at - a.created_at).total_seconds() * 1000 if a.finished_at else None
    return AnswerOut(
        id=a.id, conversation=a.conversation_id, collection=a.conversation.collection.slug, status=a.status,  # type: ignore[arg-type]
        question=a.question, answer=a.shown_text, text=a.text, shown=view.shown, evidence=evidence_out(view),
        error=a.error, citations=citations_out(view.citations),
        passages=citations_out(view.sources), grounding=grounding_out(view),
        timings=TimingsOut(
            retrieval_ms=_ms(a.retrieval_ms), ttft_ms=_ms(a.ttft_ms), generation_ms=_ms(a.generation_ms),
            grounding_ms=_ms(a.grounding_ms), total_ms=_ms(total), tokens_per_second=_ms(a.tokens_per_second),
        ),
        model=a.model_name, feedback=view.feedback, created_at=a.created_at, finished_at=a.finished_at,
    )


def collection_out(collection: Collection) -> CollectionOut:
    return CollectionOut(slug=collection.slug, name=collection.name, description=collection.description)


def document_out(document: Document) -> DocumentOut:
    return DocumentOut.model_validate(asdict(document_state(document)))


def upload_out(outcome: UploadOutcome) -> UploadOut:
    return UploadOut(created=outcome.created, message=outcome.message, document=document_out(outcome.document))
