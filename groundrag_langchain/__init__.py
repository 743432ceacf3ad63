"""GroundRAG for LangChain: a collection as a retriever, and the grounded answerer as a Runnable.

Remote (in your own process, with an API key; needs only `langchain-core` and `httpx`):

    from groundrag_langchain import GroundRAGAnswerer, GroundRAGRetriever

    retriever = GroundRAGRetriever(base_url="https://rag.example.com", api_key="grk_...", collection="handbook", k=4)
    docs = retriever.invoke("How many days of paid leave?")   # LangChain Documents with document, page, score, chunk id
    answerer = GroundRAGAnswerer(base_url="https://rag.example.com", api_key="grk_...", collection="handbook")
    reply = answerer.invoke({"question": "And how many carry over?", "history": [("human", "..."), ("ai", "...")]})
    reply.answer, reply.citations, reply.grounding

In-process (inside GroundRAG's own Django project, e.g. a management command or a notebook with Django
set up): `GroundRAGLocalRetriever(collection="handbook")` searches with the project's search service.

This package is a client of GroundRAG: none of GroundRAG's apps imports it.
"""

from groundrag_langchain.answerer import Citation, GroundedAnswer, Grounding, GroundRAGAnswerer
from groundrag_langchain.client import GroundRAGError
from groundrag_langchain.retrievers import GroundRAGLocalRetriever, GroundRAGRetriever, passage_document

__all__ = [
    "Citation",
    "GroundRAGAnswerer",
    "GroundRAGError",
    "GroundRAGLocalRetriever",
    "GroundRAGRetriever",
    "GroundedAnswer",
    "Grounding",
    "passage_document",
]
