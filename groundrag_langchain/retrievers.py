"""A GroundRAG collection as a LangChain retriever: remotely through the REST API, or in-process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import Field, SecretStr

from groundrag_langchain.client import Connection


def passage_document(passage: Mapping[str, Any], *, collection: str) -> Document:
    """A passage of /api/v1/search (or of the search service) as a Document: its text, and where it is from.

    `source` is LangChain loaders' usual key for the file; `page`/`page_end` are 1-based PDF pages.
    """
    return Document(
        id=str(passage["chunk_id"]),
        page_content=str(passage["text"]),
        metadata={
            "source": passage["document"],
            "document": passage["document"],
            "document_id": passage["document_id"],
            "page": passage["page"],
            "page_end": passage["page_end"],
            "score": passage["score"],
            "chunk_id": passage["chunk_id"],
            "collection": collection,
        },
    )


class GroundRAGRetriever(BaseRetriever):
    """Passages of one collection, best first, from a GroundRAG service (POST /api/v1/search)."""

    base_url: str
    api_key: SecretStr = Field(description="grk_... (kept secret in reprs and traces)")
    collection: str = Field(description="Collection slug the key may use")
    k: int = Field(default=5, ge=1, le=20)
    timeout: float = 30.0

    def _connection(self) -> Connection:
        return Connection(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout)

    def _body(self, query: str) -> dict[str, Any]:
        return {"question": query, "collection": self.collection, "top_k": self.k}

    def _documents(self, body: Mapping[str, Any]) -> list[Document]:
        return [passage_document(p, collection=self.collection) for p in body["passages"]]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self._documents(self._connection().post("/api/v1/search", self._body(query)))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self._documents(await self._connection().apost("/api/v1/search", self._body(query)))


class GroundRAGLocalRetriever(BaseRetriever):
    """The same passages, searched in this process with GroundRAG's search service (Django set up).

    For code that runs inside the GroundRAG project itself (commands, notebooks, evaluation scripts):
    no HTTP, no key, every collection.
    """

    collection: str = Field(description="Collection slug")
    k: int = Field(default=5, ge=1)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        from ingestion.models import Collection
        from retrieval.services import chunks_search

        collection = Collection.objects.filter(slug=self.collection).first()
        if collection is None:
            raise ValueError(f"No collection with slug {self.collection!r}")
        return [
            passage_document(
                {
                    "chunk_id": p.chunk_id, "text": p.text, "document": p.document_name, "document_id": p.document_id,
                    "page": p.page_start, "page_end": p.page_end, "score": p.score,
                },
                collection=self.collection,
            )
            for p in chunks_search(collection_id=collection.id, query=query, k=self.k)
        ]
