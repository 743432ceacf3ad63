"""LangChain integration (groundrag_langchain): real langchain-core chains against our API served by uvicorn.

The retriever in-process and through POST /api/v1/search returns exactly our search's passages; a
user-style LCEL chain (our retriever, a prompt, the user's own OpenAI-compatible model through
langchain-openai, a parser) runs end to end; the grounded answerer Runnable and langchain-openai's
ChatOpenAI talk to a real gpu worker through /api/v1/ask and /v1/chat/completions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from api.keys import api_key_create
from chat.models import Answer
from groundrag_langchain import (
    GroundedAnswer,
    GroundRAGAnswerer,
    GroundRAGError,
    GroundRAGLocalRetriever,
    GroundRAGRetriever,
)
from ingestion.models import Collection
from retrieval.services import chunks_search, index_sync
from tests.conftest import HANDBOOK, WorkerProcess, asgi_server_running, transformers_worker_env, worker_env
from tests.corpus import document_embedded
from tests.grants import SYSTEM
from tests.llm_fixtures import tiny_mistral_build

QUESTIONS = [
    "How many days of paid annual leave does an employee get?",
    "What is the daily meal allowance on business trips?",
    "When are the core working hours?",
]
ANSWER_WAIT_S = 240


def _collection(name: str) -> Collection:
    collection = Collection.objects.create(name=name)
    document_embedded(collection, "Employee Handbook.pdf", HANDBOOK)
    document_embedded(collection, "Travel Policy.pdf", [
        "Economy class is booked for flights under six hours and business class above that.",
        "Receipts must be uploaded within thirty days of the end of the trip.",
    ])
    index_sync(collection_id=collection.id)
    return collection


def _as_tuples(documents: list[Document]) -> list[tuple[Any, ...]]:
    return [
        (d.metadata["chunk_id"], d.page_content, d.metadata["document"], d.metadata["page"], d.metadata["score"])
        for d in documents
    ]


# /api/v1/search in-process: the access rules -------------------------------------------------------------


@pytest.mark.django_db
def test_search_endpoint_returns_passages_of_the_key_s_collections_only() -> None:
    handbook = _collection("Handbook")
    Collection.objects.create(name="Secret")
    key = api_key_create(name="bot", collections=[handbook], rate_limit_per_minute=0, actor=SYSTEM).secret
    client = Client(headers={"Authorization": f"Bearer {key}"})

    def post(body: object, **headers: str) -> Any:
        return client.post("/api/v1/search", json.dumps(body), content_type="application/json", headers=headers)

    response = post({"question": QUESTIONS[0], "collection": "handbook", "top_k": 2})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["collection"] == "handbook" and len(body["passages"]) == 2
    first = body["passages"][0]
    assert first["document"] == "Employee Handbook.pdf" and first["page"] == 2 and "27 days" in first["text"]
    expected = chunks_search(collection_id=handbook.id, query=QUESTIONS[0], k=2)
    assert [(p["chunk_id"], p["score"]) for p in body["passages"]] == [(p.chunk_id, p.score) for p in expected]
    forbidden = post({"question": QUESTIONS[0], "collection": "secret"})
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "collection_forbidden"
    unknown = post({"question": QUESTIONS[0], "collection": "no-such"})
    assert unknown.status_code == 403  # an unknown slug looks like a forbidden one: nothing leaks
    assert post({"question": QUESTIONS[0], "collection": "handbook", "top_k": 0}).status_code == 422
    assert post({"question": "   ", "collection": "handbook"}).status_code == 422
    anonymous = Client().post("/api/v1/search", json.dumps({"question": "x", "collection": "handbook"}), content_type="application/json")
    assert anonymous.status_code == 401
    schema = Client().get("/api/v1/openapi.json").json()
    operation = schema["paths"]["/api/v1/search"]["post"]
    assert {"200", "401", "403", "422"} <= set(operation["responses"])


@pytest.mark.django_db
def test_ask_takes_the_client_s_history_for_a_new_conversation() -> None:
    handbook = _collection("Handbook")
    key = api_key_create(name="bot", collections=[handbook], rate_limit_per_minute=0, actor=SYSTEM).secret
    client = Client(headers={"Authorization": f"Bearer {key}"})
    body = {
        "question": "And how many carry over?", "collection": "handbook", "stream": True,
        "history": [{"question": QUESTIONS[0], "answer": "27 days [1]."}],
    }
    response = client.post("/api/v1/ask", json.dumps(body), content_type="application/json")
    assert response.status_code == 200
    answer = Answer.objects.get(id=int(response["X-Answer-Id"]))
    earlier = Answer.objects.filter(conversation=answer.conversation).exclude(id=answer.id).get()
    assert (earlier.question, earlier.text, earlier.backend, earlier.model_called) == (QUESTIONS[0], "27 days [1].", "client", False)
    both = {**body, "conversation": answer.conversation_id}
    refused = client.post("/api/v1/ask", json.dumps(both), content_type="application/json")
    assert refused.status_code == 400 and "not both" in refused.json()["error"]["message"]


# Against a served API -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_worker(
    django_db_setup: None, django_db_blocker: Any, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A gpu worker with the tiny random Mistral: answers in milliseconds; here only their shape matters."""
    model = tiny_mistral_build(tmp_path_factory.mktemp("tiny-lc") / "model", window=2048)
    with django_db_blocker.unblock():
        env = transformers_worker_env(data_dir, model=model, batching="off", max_new_tokens=16)
    worker = WorkerProcess(env, tmp_path_factory.mktemp("lc-worker") / "worker.log", queues="gpu", name="langchain")
    yield worker.start()
    worker.stop()


@pytest.fixture(scope="module")
def server(django_db_setup: None, django_db_blocker: Any, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with django_db_blocker.unblock():
        env = worker_env(data_dir, RAG_API_ANSWER_TIMEOUT=str(ANSWER_WAIT_S))
    with asgi_server_running(env, tmp_path_factory.mktemp("lc-uvicorn") / "uvicorn.log") as url:
        yield url


@pytest.fixture
def served_key(transactional_db: None) -> tuple[Collection, str]:
    handbook = _collection("Handbook")
    return handbook, api_key_create(name="langchain app", collections=[handbook], rate_limit_per_minute=0, actor=SYSTEM).secret


@pytest.mark.slow
def test_retrievers_in_process_and_remote_return_our_search_s_passages(server: str, served_key: tuple[Collection, str]) -> None:
    handbook, key = served_key
    local = GroundRAGLocalRetriever(collection="handbook", k=3)
    remote = GroundRAGRetriever(base_url=server, api_key=SecretStr(key), collection="handbook", k=3)
    for question in QUESTIONS:
        ours = [(p.chunk_id, p.text, p.document_name, p.page_start, p.score)
                for p in chunks_search(collection_id=handbook.id, query=question, k=3)]
        assert len(ours) == 3
        assert _as_tuples(local.invoke(question)) == ours
        assert _as_tuples(remote.invoke(question)) == ours
    documents = remote.invoke(QUESTIONS[0])
    assert documents[0].id == str(documents[0].metadata["chunk_id"])
    assert documents[0].metadata["source"] == "Employee Handbook.pdf" and documents[0].metadata["collection"] == "handbook"
    # Batched and async, as LCEL runs them.
    batched = remote.batch(QUESTIONS)
    assert [_as_tuples(d) for d in batched] == [_as_tuples(local.invoke(q)) for q in QUESTIONS]
    assert _as_tuples(asyncio.run(remote.ainvoke(QUESTIONS[1]))) == _as_tuples(local.invoke(QUESTIONS[1]))
    assert key not in repr(remote)  # the key stays out of reprs and traces
    with pytest.raises(GroundRAGError) as refused:
        GroundRAGRetriever(base_url=server, api_key=SecretStr(key), collection="secret").invoke("x")
    assert (refused.value.status, refused.value.code) == (403, "collection_forbidden")


@pytest.mark.slow
def test_a_user_lcel_chain_with_our_retriever_runs_end_to_end(
    server: str, tiny_worker: WorkerProcess, served_key: tuple[Collection, str]
) -> None:
    """The README's chain: our passages in the user's own prompt, then an OpenAI-compatible chat model
    through langchain-openai (here our own /v1/chat/completions, answered by the gpu worker), then a parser."""
    _, key = served_key
    retriever = GroundRAGRetriever(base_url=server, api_key=SecretStr(key), collection="handbook", k=2)

    def format_docs(docs: list[Document]) -> str:
        return "\n\n".join(f"[{d.metadata['document']}, p. {d.metadata['page']}] {d.page_content}" for d in docs)

    prompt = ChatPromptTemplate.from_messages([
        ("system", "Answer from the context only, in one short sentence.\n\nContext:\n{context}"),
        ("human", "{question}"),
    ])
    seen: list[str] = []

    def remember(value: Any) -> Any:
        seen.append(value.to_string())
        return value

    model = ChatOpenAI(base_url=f"{server}/v1", api_key=SecretStr(key), model="handbook", timeout=ANSWER_WAIT_S + 30, max_retries=0)
    chain = (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | prompt | RunnableLambda(remember) | model | StrOutputParser()
    )
    answer = chain.invoke(QUESTIONS[0])
    assert isinstance(answer, str) and answer == Answer.objects.order_by("-id").first().text  # type: ignore[union-attr]
    assert "27 days of paid annual leave" in seen[0] and "[Employee Handbook.pdf, p. 2]" in seen[0]


@pytest.mark.slow
def test_the_answerer_runnable_and_chat_openai_get_grounded_answers(
    server: str, tiny_worker: WorkerProcess, served_key: tuple[Collection, str]
) -> None:
    _, key = served_key
    answerer = GroundRAGAnswerer(base_url=server, api_key=SecretStr(key), collection="handbook", timeout=ANSWER_WAIT_S + 30)
    history = [HumanMessage(QUESTIONS[0]), AIMessage("Employees get 27 days [1].")]
    reply = answerer.invoke({"question": "And how many of them carry over?", "history": history})
    assert isinstance(reply, GroundedAnswer) and reply.answer and reply.collection == "handbook"
    stored = Answer.objects.get(id=reply.answer_id)
    assert stored.text == reply.answer and stored.status == "done"
    assert reply.passages and any("27 days" in p.text for p in reply.passages)
    assert reply.grounding is not None and 0 <= reply.grounding.score <= 1
    earlier = Answer.objects.filter(conversation_id=reply.conversation, backend="client").get()
    assert earlier.question == QUESTIONS[0]  # the history reached the conversation
    follow_up = (answerer | RunnableLambda(lambda a: a.answer)).invoke({"question": "Who approves?", "conversation": reply.conversation})
    assert follow_up == Answer.objects.filter(conversation_id=reply.conversation).order_by("-id").first().text  # type: ignore[union-attr]

    chat = ChatOpenAI(base_url=f"{server}/v1", api_key=SecretStr(key), model="handbook", timeout=ANSWER_WAIT_S + 30, max_retries=0)
    message = chat.invoke(QUESTIONS[1])
    latest = Answer.objects.order_by("-id").first()
    assert latest is not None and message.content == latest.text and latest.question == QUESTIONS[1]
    streamed = "".join(str(chunk.content) for chunk in chat.stream(QUESTIONS[2]))
    assert streamed == Answer.objects.order_by("-id").first().text  # type: ignore[union-attr]


def test_the_integration_is_a_client_no_app_imports_it() -> None:
    import re

    from tests.conftest import ROOT

    imports = re.compile(r"^\s*(?:from|import)\s+groundrag_langchain\b", re.MULTILINE)
    for app in ("api", "chat", "ingestion", "llm", "ragsite", "retrieval"):
        for path in (ROOT / app).rglob("*.py"):
            assert not imports.search(path.read_text()), path
