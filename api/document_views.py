"""/api/v1/documents: list (paginated, filtered by status), upload, status, delete, re-index; the original
file and page images (what a citation points at)."""

from __future__ import annotations

from typing import Annotated

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from ninja import File, Form, Path, Query, Router
from ninja.files import UploadedFile

from api import services
from api.schemas import DocumentFilter, DocumentOut, DocumentPage, UploadOut, document_out, upload_out
from api.views import IdPath, caller_of, errors
from ingestion import pages
from ragsite.downloads import file_download_response, image_response

router = Router(tags=["documents"])
PageNumber = Annotated[int, Path(ge=1, le=100_000, description="1-based, as citations give it")]


def _binary(description: str, media_type: str) -> dict[str, object]:
    return {
        "responses": {
            200: {"description": description, "content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}
        }
    }


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


@router.get(
    "/documents/{document_id}/file", response=errors(404, 409, 422), url_name="document_file",
    openapi_extra=_binary("The original file as uploaded, as an attachment (its own media type)", "*/*"),
)
async def document_file(request: HttpRequest, document_id: IdPath) -> StreamingHttpResponse:
    """Download the original file. 409 when none is stored (it was refused at upload)."""
    caller = caller_of(request)
    stored = await sync_to_async(
        lambda: pages.document_file(document=services.document_for_key(caller=caller, document_id=document_id))
    )()
    return file_download_response(path=stored.path, filename=stored.name, content_type=stored.media_type)


@router.get(
    "/documents/{document_id}/pages/{number}", response=errors(404, 409, 422), url_name="document_page",
    openapi_extra=_binary("The page as a PNG image, RAG_PAGE_IMAGE_WIDTH pixels wide", "image/png"),
)
async def document_page(request: HttpRequest, document_id: IdPath, number: PageNumber) -> HttpResponse:
    """A page of a PDF as an image: draw a citation's `highlights` over it.

    404 for a page the document does not have; 409 when it has no page images (it failed to ingest, its
    file is gone, or it is not a PDF: download the file instead).
    """
    caller = caller_of(request)
    document = await sync_to_async(services.document_for_key)(caller=caller, document_id=document_id)
    return image_response(await pages.page_image_async(document=document, number=number))
