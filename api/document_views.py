"""/api/v1/documents: list (paginated, filtered by status), upload, status, delete, re-index."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import File, Form, Query, Router
from ninja.files import UploadedFile

from api import services
from api.schemas import DocumentFilter, DocumentOut, DocumentPage, UploadOut, document_out, upload_out
from api.views import IdPath, caller_of, errors

router = Router(tags=["documents"])


@router.get("/documents", response={200: DocumentPage, **errors(403, 422)})
def documents_list(request: HttpRequest, filters: Query[DocumentFilter]) -> DocumentPage:
    """Documents of this key's collections (or of one), newest first."""
    qs = services.documents_for_key(caller=caller_of(request), collection=filters.collection, status=filters.status)
    page = qs[filters.offset : filters.offset + filters.limit]
    return DocumentPage(count=qs.count(), items=[document_out(d) for d in page])


@router.post("/documents", response={201: UploadOut, 200: UploadOut, **errors(400, 403, 413, 422)})
def document_upload(request: HttpRequest, collection: Form[str], file: File[UploadedFile]) -> tuple[int, UploadOut]:
    """Upload one document (multipart: `collection`, `file`): PDF, Word (.docx), HTML, Markdown or plain text,
    told by its content, not its name. It is ingested in the background: poll its status. A file of another
    type is refused at once (status `failed`, `error_code` `unsupported_type`, an error naming what it is).

    Needs a key allowed to manage documents. 200 when the same file is already in the collection.
    """
    if file.name:
        file.name = file.name.replace("\x00", "")  # PostgreSQL text cannot hold NUL
    outcome = services.document_upload_for_key(caller=caller_of(request), collection=collection, upload=file)
    return (201 if outcome.created else 200), upload_out(outcome)


@router.get("/documents/{document_id}", response={200: DocumentOut, **errors(404, 422)})
def document_get(request: HttpRequest, document_id: IdPath) -> DocumentOut:
    """A document's status and ingestion progress."""
    return document_out(services.document_for_key(caller=caller_of(request), document_id=document_id))


@router.delete("/documents/{document_id}", response={204: None, **errors(403, 404, 422)})
def document_delete(request: HttpRequest, document_id: IdPath) -> tuple[int, None]:
    """Delete a document, its passages and its file; it leaves the search index right after."""
    services.document_delete_for_key(caller=caller_of(request), document_id=document_id)
    return 204, None


@router.post("/documents/{document_id}/reindex", response={202: DocumentOut, **errors(400, 403, 404, 422)})
def document_reindex(request: HttpRequest, document_id: IdPath) -> tuple[int, DocumentOut]:
    """Parse and embed the document again (e.g. after a model upgrade)."""
    document = services.document_reindex_for_key(caller=caller_of(request), document_id=document_id)
    return 202, document_out(document)
