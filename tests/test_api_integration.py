"""The REST API served by uvicorn, answered by a real Celery worker (bundled SmolLM2 via llama.cpp):
ask (JSON and SSE), the official `openai` client (streaming and not), a concurrent burst, and schemathesis
against the served schema."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from api.keys import api_key_create
from chat.models import Answer
from ingestion.models import Collection, Document
from ingestion.services import document_upload
from llm.prompts import NOT_IN_DOCUMENTS
from tests.conftest import (
    HANDBOOK,
    ROOT,
    WorkerProcess,
    free_port,
    purge_broker,
    sse_events,
    wait_for,
    worker_env,
)
from tests.grants import SYSTEM
from tests.pdf_factory import make_text_pdf

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LEAVE_QUESTION = "How many days of paid annual leave does an employee get?"
OFF_TOPIC = "What is the melting point of tungsten carbide in kelvin?"
API_QUEUE = "gpu-api-test"
ANSWER_WAIT_S = 240  # generous: the worker is shared with other tests on two cores


@pytest.fixture(scope="module")
def api_worker(
    django_db_setup: None, django_db_blocker: object, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A worker like the session's, but SmolLM2 stops after a few tokens: here answers are checked for their
    shape (citations, events, chunks), not their wording, and long generations would only slow the module."""
    if not settings.REDIS_URL:
        pytest.fail("REDIS_URL is not set: run the tests with `make test` (Redis on 127.0.0.1:6379)")
    purge_broker()
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        env = worker_env(data_dir, RAG_LLM_BACKEND="llamacpp", RAG_LLM_MAX_NEW_TOKENS="48", RAG_GPU_QUEUE=API_QUEUE)
    # Its own queue for the served API's questions (the session's worker, if started, answers with the default
    # backend), and the shared one for those asked in this process.
    queues = f"ingest,gpu,{API_QUEUE}"
    worker = WorkerProcess(env, tmp_path_factory.mktemp("api-worker") / "worker.log", queues=queues, name="api").start()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def api_server(
    api_worker: WorkerProcess,
    data_dir: Path,
    django_db_blocker: object,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """uvicorn serving the project against the test database (SSE and the async views need ASGI)."""
    port = free_port()
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        env = worker_env(data_dir, RAG_API_ANSWER_TIMEOUT=str(ANSWER_WAIT_S), RAG_GPU_QUEUE=API_QUEUE)
    log = tmp_path_factory.mktemp("uvicorn") / "uvicorn.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "ragsite.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return urllib.request.urlopen(f"{url}/api/v1/openapi.json", timeout=2).status == 200
        except OSError:
            return False

    wait_for(up, timeout=60, what=f"uvicorn to answer (log: {log})")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture
def handbook(tmp_path: Path) -> Collection:
    collection = Collection.objects.create(name="Handbook")
    pdf = make_text_pdf(tmp_path / "handbook.pdf", HANDBOOK)
    document_upload(
        collection=collection, upload=SimpleUploadedFile("Employee Handbook.pdf", pdf.read_bytes()), actor=SYSTEM
    )
    wait_for(
        lambda: Document.objects.filter(collection=collection, status=Document.Status.READY).exists(),
        timeout=180,
        what="the handbook to be indexed",
    )
    return collection


@pytest.fixture
def key(handbook: Collection) -> str:
    return api_key_create(name="support bot", collections=[handbook], rate_limit_per_minute=0, actor=SYSTEM).secret


def test_ask_gives_a_cited_grounded_answer_as_json_and_as_events(api_server: str, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=api_server, headers=headers, timeout=ANSWER_WAIT_S + 30) as http:
        response = http.post("/api/v1/ask", json={"question": LEAVE_QUESTION, "collection": "handbook"})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["status"] == "done" and answer["answer"] and answer["collection"] == "handbook"
        first = answer["passages"][0]
        assert (
            first["document"] == "Employee Handbook.pdf" and first["page"] == 2 and "27 days" in first["text"]
        )
        assert 0 < first["score"] <= 1
        assert {c["n"] for c in answer["citations"]} <= {p["n"] for p in answer["passages"]}
        assert all(c["cited"] for c in answer["citations"])
        assert answer["grounding"] is not None and 0 <= answer["grounding"]["score"] <= 1
        assert answer["timings"]["retrieval_ms"] is not None and answer["timings"]["total_ms"] > 0
        assert "SmolLM2" in answer["model"]

        body = {
            "question": "How many of them can be carried over?",
            "conversation": answer["conversation"],
            "stream": True,
        }
        with http.stream("POST", "/api/v1/ask", json=body) as streamed:
            assert streamed.headers["content-type"] == "text/event-stream"
            events = sse_events(streamed.read().decode())
        kinds = [kind for kind, _ in events]
        assert kinds[0] == "start" and kinds.count("token") >= 1 and kinds[-2:] == ["done", "grounding"], (
            kinds
        )
        done = events[-2][1]
        assert "".join(str(data["text"]) for kind, data in events if kind == "token") == done["answer"]
        assert done["conversation"] == answer["conversation"] and events[-1][1]["grounding"] is not None

        conversation = http.get(f"/api/v1/conversations/{answer['conversation']}").json()
        assert [a["id"] for a in conversation["answers"]] == [answer["id"], done["id"]]
        assert http.get("/api/v1/conversations").json()["count"] == 1
        feedback = http.post(
            f"/api/v1/answers/{answer['id']}/feedback", json={"value": "up", "comment": "spot on"}
        )
        assert feedback.status_code == 200 and feedback.json()["feedback"] == "up"
    stored = Answer.objects.get(id=answer["id"])
    assert stored.feedback == 1 and stored.feedback_comment == "spot on" and stored.source == "api"


def test_the_openai_client_gets_cited_answers_streaming_and_not(api_server: str, key: str) -> None:
    client = openai.OpenAI(
        base_url=f"{api_server}/v1", api_key=key, max_retries=0, timeout=ANSWER_WAIT_S + 30
    )
    assert [m.id for m in client.models.list()] == ["handbook"]
    messages = [
        {"role": "system", "content": "You are a helpful bot."},
        {"role": "user", "content": LEAVE_QUESTION},
    ]
    completion = client.chat.completions.create(model="handbook", messages=messages)  # type: ignore[arg-type]
    assert completion.object == "chat.completion" and completion.choices[0].finish_reason == "stop"
    text = completion.choices[0].message.content
    extra = completion.model_extra or {}
    assert text and text == Answer.objects.get(id=extra["answer_id"]).text
    assert "27 days" in extra["passages"][0]["text"] and extra["passages"][0]["page"] == 2
    assert completion.usage is not None and completion.usage.prompt_tokens > 50

    # A bot framework's own model name works for a key with one collection; earlier turns become history.
    follow_up = [
        *messages,
        {"role": "assistant", "content": text},
        {"role": "user", "content": "And how many carry over?"},
    ]
    stream: Any = client.chat.completions.create(model="gpt-4o-mini", messages=follow_up, stream=True)  # type: ignore[arg-type]
    chunks = list(stream)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = chunks[-1]
    extra = last.model_extra or {}
    answer = Answer.objects.get(id=extra["answer_id"])
    assert streamed == answer.text and last.choices[0].finish_reason == "stop"
    assert "citations" in extra and extra["passages"]
    assert answer.standalone_query != "And how many carry over?"  # the history reached the query rewriter

    with pytest.raises(openai.AuthenticationError) as refused:
        openai.OpenAI(base_url=f"{api_server}/v1", api_key="grk_nope_nope", max_retries=0).models.list()
    assert refused.value.status_code == 401 and "invalid_api_key" in str(refused.value.body)


def test_a_timed_out_answer_can_be_fetched_later(
    api_worker: WorkerProcess, key: str, settings: object
) -> None:
    settings.API_ANSWER_TIMEOUT = 0.05  # type: ignore[attr-defined]
    client = Client(headers={"Authorization": f"Bearer {key}"})
    response = client.post(
        "/api/v1/ask",
        {"question": LEAVE_QUESTION, "collection": "handbook", "top_k": 1},
        content_type="application/json",
    )
    assert response.status_code == 504, response.content
    answer_id = response.json()["error"]["answer_id"]
    done = wait_for(
        lambda: client.get(f"/api/v1/answers/{answer_id}").json()["status"] == "done",
        timeout=ANSWER_WAIT_S,
        what="the answer",
    )
    assert done and client.get(f"/api/v1/answers/{answer_id}").json()["answer"]
    assert len(Answer.objects.get(id=answer_id).passages) == 1  # top_k reached the worker


def test_a_concurrent_burst_gets_answers_or_429_never_a_5xx(api_server: str, handbook: Collection) -> None:
    limited = api_key_create(name="bursty", collections=[handbook], rate_limit_per_minute=12, actor=SYSTEM).secret
    calm = api_key_create(name="calm", collections=[handbook], actor=SYSTEM).secret
    completion = {"model": "handbook", "messages": [{"role": "user", "content": OFF_TOPIC}]}
    calls: list[tuple[str, str, object]] = [("POST", "/api/v1/ask", {"question": OFF_TOPIC, "collection": "handbook"})] * 8
    calls += [("POST", "/v1/chat/completions", completion)] * 6 + [("GET", "/api/v1/documents", None)] * 10

    def call(spec: tuple[str, str, object]) -> httpx.Response:
        method, path, body = spec
        headers = {"Authorization": f"Bearer {limited}"}
        return httpx.request(
            method, f"{api_server}{path}", json=body, headers=headers, timeout=ANSWER_WAIT_S + 30
        )

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        responses = list(pool.map(call, calls))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429} and statuses.count(200) >= 12 and statuses.count(429) >= 1, statuses
    assert all(1 <= int(r.headers["Retry-After"]) <= 60 for r in responses if r.status_code == 429)
    asked = [r.json() for r in responses if r.status_code == 200 and r.request.url.path == "/api/v1/ask"]
    assert all(a["status"] == "done" and a["answer"] == NOT_IN_DOCUMENTS for a in asked)
    calm_response = httpx.get(f"{api_server}/api/v1/documents", headers={"Authorization": f"Bearer {calm}"})
    assert calm_response.status_code == 200  # the limit is per key


# 413 is how oversized bodies are refused. (Positive-data acceptance is not checked: some rules are
# semantic and the schema cannot say them, e.g. a collection or a conversation, the last message is the
# user's: a schema-valid request can be a 400.)
SCHEMATHESIS_CONFIG = """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
"""


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(api_server: str, handbook: Collection, tmp_path: Path) -> None:
    fuzz_key = api_key_create(
        name="fuzzer", collections=[handbook], rate_limit_per_minute=0, can_manage_documents=True
    , actor=SYSTEM).secret
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    command = [
        str(Path(sys.executable).with_name("st")), "--config-file", str(config), "run", f"{api_server}/api/v1/openapi.json",
        "--header", f"Authorization: Bearer {fuzz_key}", "--checks", "all", "--exclude-checks", "positive_data_acceptance", "--max-response-time", str(ANSWER_WAIT_S),
        "--phases", "examples,coverage,fuzzing", "--max-examples", "8", "--workers", "1", "--seed", "4",
        "--request-timeout", str(ANSWER_WAIT_S + 30), "--no-shrink", "--output-truncate", "true",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900, env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout or " passed" in result.stdout, result.stdout[-3000:]
