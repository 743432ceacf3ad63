"""What an API key may see and do. Every selector filters by the key's collections (and, for
conversations and answers, by the key itself), and an id outside them is NotFound: nothing leaks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from api.exceptions import (
    CollectionForbidden,
    InvalidRequest,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
)
from api.keys import Caller
from api.models import KeyConversation
from chat.models import Answer, Conversation
from chat.services import HISTORY_TURNS, answer_ask, conversation_create, question_clean
from ingestion.models import Collection, Document
from ingestion.services import UploadOutcome, document_delete, document_reindex, document_upload
from ragsite.logs import log_event
from retrieval.services import Passage, chunks_search

logger = logging.getLogger(__name__)

# Rows left PENDING or STREAMING longer than this belong to a lost task, not to the queue.
_QUEUE_HORIZON = timedelta(hours=1)


def collection_for_key(*, caller: Caller, slug: str) -> Collection:
    for collection in caller.collections:
        if collection.slug == slug:
            return collection
    allowed = ", ".join(c.slug for c in caller.collections) or "none"
    raise CollectionForbidden(f"This key may not use collection {slug!r}; its collections: {allowed}")


def documents_for_key(*, caller: Caller, collection: str | None = None, status: str | None = None) -> QuerySet[Document]:
    ids = [collection_for_key(caller=caller, slug=collection).id] if collection else caller.collection_ids
    qs = Document.objects.filter(collection_id__in=ids).select_related("collection")
    return qs.filter(status=status) if status else qs


def document_for_key(*, caller: Caller, document_id: int) -> Document:
    document = documents_for_key(caller=caller).filter(id=document_id).first()
    if document is None:
        raise NotFound(f"Document {document_id} does not exist in this key's collections")
    return document


def _may_manage(caller: Caller) -> None:
    if not caller.key.can_manage_documents:
        raise PermissionDenied("This key may not upload, delete or re-index documents: ask an administrator")


def document_upload_for_key(*, caller: Caller, collection: str, upload: UploadedFile) -> UploadOutcome:
    _may_manage(caller)
    target = collection_for_key(caller=caller, slug=collection)
    if (upload.size or 0) > settings.MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(
            f"The file is {upload.size} bytes; the limit is {settings.MAX_UPLOAD_BYTES} (RAG_MAX_UPLOAD_BYTES): split it"
        )
    return document_upload(collection=target, upload=upload, actor=caller.actor)


def document_delete_for_key(*, caller: Caller, document_id: int) -> None:
    _may_manage(caller)
    document_delete(document=document_for_key(caller=caller, document_id=document_id), actor=caller.actor)


def document_reindex_for_key(*, caller: Caller, document_id: int) -> Document:
    _may_manage(caller)
    return document_reindex(document=document_for_key(caller=caller, document_id=document_id), actor=caller.actor)


def conversations_for_key(*, caller: Caller, collection: str | None = None) -> QuerySet[Conversation]:
    ids = [collection_for_key(caller=caller, slug=collection).id] if collection else caller.collection_ids
    return Conversation.objects.filter(key_link__key=caller.key, collection_id__in=ids).select_related("collection")


def conversation_for_key(*, caller: Caller, conversation_id: int) -> Conversation:
    conversation = conversations_for_key(caller=caller).filter(id=conversation_id).first()
    if conversation is None:
        raise NotFound(f"Conversation {conversation_id} does not exist or was not started with this key")
    return conversation


def answer_for_key(*, caller: Caller, answer_id: int) -> Answer:
    answer = Answer.objects.filter(
        id=answer_id, conversation__key_link__key=caller.key, conversation__collection_id__in=caller.collection_ids
    ).select_related("conversation__collection").first()
    if answer is None:
        raise NotFound(f"Answer {answer_id} does not exist or was not asked with this key")
    return answer


def gpu_queue_depth() -> int:
    """Answers waiting for or being written by a gpu worker; the same count with either broker."""
    since = timezone.now() - _QUEUE_HORIZON
    return Answer.objects.filter(
        status__in=(Answer.Status.PENDING, Answer.Status.STREAMING), created_at__gte=since
    ).count()


def answer_admit() -> None:
    """Refuse at once when the gpu queue is too deep: a bot can retry later, a hanging request helps no one."""
    depth = gpu_queue_depth()
    if depth >= settings.API_MAX_QUEUE:
        log_event(logger, "api_overloaded", level=logging.WARNING, depth=depth, limit=settings.API_MAX_QUEUE)
        raise Overloaded(
            f"{depth} answers are waiting for the model (limit {settings.API_MAX_QUEUE}): retry in a few seconds",
            retry_after=settings.API_BUSY_RETRY_AFTER,
        )


def conversation_start_for_key(
    *, caller: Caller, collection: Collection, history: Sequence[tuple[str, str]] = ()
) -> Conversation:
    """A new conversation in one of the key's collections, linked to the key (only it will see it), holding
    the client's earlier exchanges (question, answer) as history.

    They are marked as not generated here (backend "client", no model call), so no report counts them. An
    earlier question over the limit is refused like a new one, never cut.
    """
    now = timezone.now()
    with transaction.atomic():
        conversation = conversation_create(collection=collection)
        KeyConversation.objects.create(conversation=conversation, key=caller.key)
        Answer.objects.bulk_create(
            Answer(
                conversation=conversation, source=Answer.Source.API, question=question_clean(q), text=a.strip(),
                status=Answer.Status.DONE, backend="client", finished_at=now,
            )
            for q, a in list(history)[-HISTORY_TURNS:]
            if q.strip() and a.strip()
        )
    return conversation


def passages_search_for_key(*, caller: Caller, question: str, collection: str, top_k: int) -> list[Passage]:
    """The passages of one of the key's collections that best match the question, best first (no answer)."""
    question = question_clean(question)
    return chunks_search(collection_id=collection_for_key(caller=caller, slug=collection).id, query=question, k=top_k)


def answer_ask_for_key(
    *, caller: Caller, question: str, collection: str | None, conversation_id: int | None, top_k: int | None,
    history: Sequence[tuple[str, str]] = (),
) -> Answer:
    """Ask in one of the key's conversations, or start one in one of its collections."""
    question = question_clean(question)  # before anything is created: a refused question leaves no trace
    if conversation_id is not None and history:
        raise InvalidRequest("Send `history` to start a conversation, or `conversation` to continue one, not both")
    if conversation_id is not None:
        conversation = conversation_for_key(caller=caller, conversation_id=conversation_id)
        if collection and collection != conversation.collection.slug:
            raise InvalidRequest(
                f"Conversation {conversation_id} is in collection {conversation.collection.slug!r}, not {collection!r}"
            )
        answer_admit()
    elif collection:
        target = collection_for_key(caller=caller, slug=collection)
        answer_admit()
        conversation = conversation_start_for_key(caller=caller, collection=target, history=history)
    else:
        raise InvalidRequest("Name a collection (its slug) or continue a conversation (its id)")
    return answer_ask(
        conversation=conversation, question=question, actor=caller.actor, source=Answer.Source.API, top_k=top_k
    )
