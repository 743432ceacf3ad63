"""Errors of the ingestion app.

`DocumentRejected` is permanent: retrying cannot help, so tasks turn it into a FAILED status and show
`str(exc)` to the person who uploaded the file. Anything else escaping a parser is a bug or an
infrastructure problem, and is left to the task boundary to log and retry.
"""

from __future__ import annotations

# The codes the PDF parser uses. Other services may add their own (e.g. 'missing_file'), so
# `DocumentRejected.code` is a plain str rather than a closed Literal.
PDF_REJECT_CODES = ("not_pdf", "encrypted", "corrupt", "empty", "too_large", "too_many_pages")


class IngestionError(Exception):
    """Base of this app's errors."""


class DocumentRejected(IngestionError):
    """Permanent: the file can never be ingested as is.

    `str(exc)` is a message a person can act on: it names the problem and what to do, e.g.
    'PDF is encrypted: upload it without a password'. `code` is stable, for programs (API clients,
    metrics); the message may be reworded.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code: str = code

    def __reduce__(self) -> tuple[object, ...]:
        # Celery and multiprocessing pickle exceptions; the default reduce would drop the
        # keyword-only `code` and fail to rebuild the exception on the other side.
        return (_document_rejected_rebuild, (str(self), self.code))


def _document_rejected_rebuild(message: str, code: str) -> DocumentRejected:
    return DocumentRejected(message, code=code)


class OcrFailed(IngestionError):
    """OCR could not run on one page image (the engine rejected or choked on it).

    The PDF parser records it as a warning for that page and carries on with the others.
    """


class EmbedderUnavailable(IngestionError):
    """The embedding model cannot be loaded; the message says which and what to do."""


class DocumentNotFound(IngestionError):
    """No such document among the collections the caller may read: it looks the same as a missing one."""


class FileUnavailable(IngestionError):
    """The document's original file is not stored (refused at upload, or lost): there is nothing to download."""


class PageNotFound(IngestionError):
    """The document has no page of that number; the message says which pages it has."""


class PageUnavailable(IngestionError):
    """The document's pages cannot be shown as images: it failed to ingest, its file is gone, it is not a
    PDF (a Word or HTML document has sections, not pages), or the page is too large to render safely."""


class CollectionNotFound(IngestionError):
    """No such collection or document, or one the user may not change: both look the same, so ids leak nothing."""


class GrantInvalid(IngestionError):
    """A members form names no one, an unknown user, or an unknown role."""


# (exception, HTTP status, stable code), registered with ragsite.errors when the app loads.
ERRORS: list[tuple[type[Exception], int, str]] = [
    (CollectionNotFound, 404, "not_found"),
    (GrantInvalid, 400, "bad_request"),
    (DocumentRejected, 422, "document_rejected"),
    (DocumentNotFound, 404, "not_found"),
    (PageNotFound, 404, "page_not_found"),
    (PageUnavailable, 409, "page_unavailable"),
    (FileUnavailable, 409, "file_unavailable"),
    (EmbedderUnavailable, 503, "embedder_unavailable"),
    (IngestionError, 400, "ingestion_error"),
]
