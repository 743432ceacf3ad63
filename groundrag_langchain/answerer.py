"""GroundRAG's grounded answerer as a LangChain Runnable (through POST /api/v1/ask).

Input: a question (str), or {"question": ..., "history": [...], "conversation": id}. History is a list
of earlier turns as LangChain messages, (role, text) tuples or {"role", "content"} dicts, oldest first;
`conversation` continues one of the key's conversations instead (its history is on the server).
Output: a GroundedAnswer (answer text, cited passages, grounding score and flag).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from pydantic import BaseModel, Field, SecretStr

from groundrag_langchain.client import Connection

_USER_ROLES = {"human", "user"}
_ASSISTANT_ROLES = {"ai", "assistant"}


class Citation(BaseModel):
    n: int = Field(description="The number the answer cites it by, as [n]")
    cited: bool
    document_id: int
    document: str
    page: int
    page_end: int
    text: str
    score: float


class Grounding(BaseModel):
    score: float = Field(description="1 = every sentence supported by the passages")
    flagged: bool | None = Field(description="True: judged not grounded")
    threshold: float | None
    unsupported: list[dict[str, Any]]


class GroundedAnswer(BaseModel):
    answer: str
    citations: list[Citation] = Field(description="The passages the answer cites, in order of first use")
    passages: list[Citation] = Field(description="Every passage the model was given")
    grounding: Grounding | None = Field(description="None if it was not scored in time")
    answer_id: int
    conversation: int
    collection: str

    def documents(self) -> list[Document]:
        """The cited passages as LangChain Documents."""
        return [
            Document(
                page_content=c.text,
                metadata={"source": c.document, "document": c.document, "document_id": c.document_id,
                          "page": c.page, "page_end": c.page_end, "score": c.score, "n": c.n,
                          "collection": self.collection},
            )
            for c in self.citations
        ]


def history_pairs(history: Sequence[Any]) -> list[dict[str, str]]:
    """Completed (question, answer) exchanges from LangChain-style history; unanswered turns are dropped."""
    pairs: list[dict[str, str]] = []
    pending: str | None = None
    for turn in history:
        role, text = _role_text(turn)
        if role in _USER_ROLES:
            pending = text
        elif role in _ASSISTANT_ROLES and pending is not None:
            pairs.append({"question": pending, "answer": text})
            pending = None
    return pairs


def _role_text(turn: Any) -> tuple[str, str]:
    if isinstance(turn, BaseMessage):
        return turn.type, turn.text
    if isinstance(turn, Mapping):
        return str(turn.get("role", "")), str(turn.get("content", ""))
    if isinstance(turn, tuple) and len(turn) == 2:
        return str(turn[0]), str(turn[1])
    raise TypeError(f"Cannot read a history turn from {type(turn).__name__}: use messages, (role, text) or dicts")


class GroundRAGAnswerer(RunnableSerializable[Any, GroundedAnswer]):
    """Question (and optional history) in, a cited, grounding-scored answer out."""

    base_url: str
    api_key: SecretStr = Field(description="grk_... (kept secret in reprs and traces)")
    collection: str
    top_k: int | None = Field(default=None, ge=1, le=20, description="Passages given to the model (server default)")
    timeout: float = Field(default=180.0, description="Seconds to wait for the answer (the server has its own limit)")

    def _connection(self) -> Connection:
        return Connection(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout)

    def _body(self, value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            value = {"question": value}
        if not isinstance(value, Mapping) or not isinstance(value.get("question"), str):
            raise TypeError("GroundRAGAnswerer takes a question (str) or a dict with 'question'")
        body: dict[str, Any] = {"question": value["question"]}
        if value.get("conversation") is not None:
            body["conversation"] = int(value["conversation"])
        else:
            body["collection"] = self.collection
            if value.get("history"):
                body["history"] = history_pairs(value["history"])
        if self.top_k is not None:
            body["top_k"] = self.top_k
        return body

    @staticmethod
    def _answer(data: Mapping[str, Any]) -> GroundedAnswer:
        return GroundedAnswer(
            answer=data["answer"], citations=data["citations"], passages=data["passages"],
            grounding=data["grounding"], answer_id=data["id"], conversation=data["conversation"],
            collection=data["collection"],
        )

    def _ask(self, value: Any) -> GroundedAnswer:
        return self._answer(self._connection().post("/api/v1/ask", self._body(value)))

    async def _aask(self, value: Any) -> GroundedAnswer:
        return self._answer(await self._connection().apost("/api/v1/ask", self._body(value)))

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> GroundedAnswer:
        return self._call_with_config(self._ask, input, config, run_type="chain")

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> GroundedAnswer:
        return await self._acall_with_config(self._aask, input, config, run_type="chain")
