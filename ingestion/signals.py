"""What ingestion tells the apps above it, without importing them (retrieval listens, in its AppConfig.ready).

- `chunks_replaced`: a document's chunks (and card) were just written. Sent synchronously inside the
  ingest task, before the document turns READY: a receiver that indexes them makes READY mean searchable.
- `documents_removed`: documents of a collection are gone (sent once the deletion is committed).

Both carry `collection_id`; `chunks_replaced` also `document_id`.
"""

from django.dispatch import Signal

chunks_replaced = Signal()
documents_removed = Signal()
