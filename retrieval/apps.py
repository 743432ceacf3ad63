from typing import Any

from django.apps import AppConfig


class RetrievalConfig(AppConfig):
    name = "retrieval"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ingestion.signals import chunks_replaced, documents_removed
        from ragsite.errors import register_errors
        from retrieval.exceptions import ERRORS

        register_errors(ERRORS)
        chunks_replaced.connect(_index_now, dispatch_uid="retrieval.index_now")
        documents_removed.connect(_index_later, dispatch_uid="retrieval.index_later")


def _index_now(*, collection_id: int, **_: Any) -> None:
    """New chunks are searchable before their document turns READY: the ingest task waits for this."""
    from retrieval.services import index_sync

    index_sync(collection_id=collection_id)


def _index_later(*, collection_id: int, **_: Any) -> None:
    """Removed chunks already drop out of search (only READY documents' chunks are returned); the index
    catches up in the background."""
    from retrieval.tasks import sync_collection_index

    sync_collection_index.delay(collection_id)
