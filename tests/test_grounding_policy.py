"""RAG_GROUNDING_POLICY with a generator that invents a figure: `withhold` through the served API (a real worker
on its own queue, uvicorn, JSON, SSE and the OpenAI-compatible stream), `evidence` and `annotate` through the
same services in this process. The scorer, the extractive evidence and the retrieval are the real ones."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings

from api.keys import api_key_create
from api.schemas import answer_out
from chat.models import Answer, Conversation
from chat.records import answer_view
from chat.services import answer_generate, answer_ground
from ingestion.models import Collection, Document
from ingestion.services import document_upload
from llm.generators import ChatMessage, GenerationParams
from tests.components import component_configured
from tests.conftest import (
    HANDBOOK,
    WorkerProcess,
    asgi_server_running,
    purge_broker,
    sse_events,
    wait_for,
    worker_env,
)
from tests.grants import SYSTEM, grant
from tests.pdf_factory import make_text_pdf

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUESTION = "How many days of paid leave do employees get?"
INVENTED = "Employees get 95 days of paid leave every year, and 40 more after two years [1]."
INVENTING = "tests.test_grounding_policy.InventingGenerator"
QUEUE = "gpu-policy-test"
WAIT_S = 240


class InventingGenerator:
    """A generator that answers every question with the same invented figures (the handbook says 27)."""

    backend = "inventing"
    model_name = "inventing-test"
    quantization = "none"
    context_window = 4096

    def warm_up(self) -> None:
        pass

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return sum(len(m.content.split()) + 4 for m in messages)

    def stream(self, *, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        return iter(INVENTED.split(" ")[:1] + [" " + w for w in INVENTED.split(" ")[1:]])


@pytest.fixture
def handbook(tmp_path: Path) -> Collection:
    collection = Collection.objects.create(name="Handbook")
    pdf = make_text_pdf(tmp_path / "handbook.pdf", HANDBOOK)
    document_upload(
        collection=collection,
        upload=SimpleUploadedFile("Employee Handbook.pdf", pdf.read_bytes()),
        actor=SYSTEM,
    )
    wait_for(
        lambda: Document.objects.filter(collection=collection, status=Document.Status.READY).exists(),
        timeout=180,
        what="the handbook to be indexed",
    )
    return collection


@pytest.fixture(scope="module")
def withhold_server(
    django_db_setup: None, django_db_blocker: object, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A worker answering with the inventing generator on a queue of its own, and the web server sending to
    it, both under RAG_GROUNDING_POLICY=withhold."""
    if not settings.REDIS_URL:
        pytest.fail("REDIS_URL is not set: run the tests with `make test` (Redis on 127.0.0.1:6379)")
    purge_broker()
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        env = worker_env(
            data_dir,
            RAG_LLM_BACKEND=INVENTING,
            RAG_GROUNDING_POLICY="withhold",
            RAG_GPU_QUEUE=QUEUE,
            RAG_API_ANSWER_TIMEOUT=str(WAIT_S),
            RAG_API_GROUNDING_WAIT="60",
        )
    logs = tmp_path_factory.mktemp("policy")
    worker = WorkerProcess(env, logs / "worker.log", queues=f"ingest,{QUEUE}", name="policy").start()
    try:
        with asgi_server_running(env, logs / "uvicorn.log") as url:
            yield url
    finally:
        worker.stop()


def _key(collection: Collection) -> str:
    return api_key_create(name="bot", collections=[collection], rate_limit_per_minute=0, actor=SYSTEM).secret


def test_withhold_returns_the_evidence_not_the_invented_figure(
    withhold_server: str, handbook: Collection
) -> None:
    http = httpx.Client(
        base_url=withhold_server, headers={"Authorization": f"Bearer {_key(handbook)}"}, timeout=WAIT_S
    )
    body = http.post("/api/v1/ask", json={"question": QUESTION, "collection": handbook.slug}).json()
    assert body["grounding"]["flagged"] is True, body
    assert body["shown"] == "evidence" and body["text"] == INVENTED
    assert (
        body["answer"] == body["evidence"]["text"]
        and "27 days" in body["answer"]
        and "95" not in body["answer"]
    )
    assert body["evidence"]["citations"] and "27 days" in body["evidence"]["citations"][0]["text"]

    # The stream holds the invented tokens back: the only text it sends is the evidence.
    events = sse_events(
        http.post(
            "/api/v1/ask", json={"question": QUESTION, "collection": handbook.slug, "stream": True}
        ).text
    )
    streamed = "".join(str(data["text"]) for kind, data in events if kind == "token")
    assert "95" not in streamed and "27 days" in streamed
    kinds = [kind for kind, _ in events]
    assert kinds.index("done") > max(i for i, k in enumerate(kinds) if k == "token")
    done = next(data for kind, data in events if kind == "done")
    assert done["shown"] == "evidence" and done["answer"] == streamed

    # The OpenAI-compatible stream too.
    completion = {"model": handbook.slug, "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    lines = http.post("/v1/chat/completions", json=completion).text.splitlines()
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    content = "".join(str(c["choices"][0]["delta"].get("content") or "") for c in chunks if "choices" in c)
    assert "95" not in content and "27 days" in content
    assert chunks[-1]["shown"] == "evidence" and chunks[-1]["text"] == INVENTED


def test_withhold_in_the_chat_streams_only_the_evidence(withhold_server: str, handbook: Collection) -> None:
    user = get_user_model().objects.create_user("wanda", password="pw-wanda-123456")
    grant(handbook, user=user)
    client = Client()
    client.force_login(user)
    http = httpx.Client(
        base_url=withhold_server, timeout=WAIT_S, cookies={"sessionid": client.cookies["sessionid"].value}
    )
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', http.get("/").text)
    assert token is not None
    asked = http.post(
        "/ask/",
        data={"collection": str(handbook.id), "question": QUESTION},
        headers={"X-CSRFToken": token.group(1)},
    ).json()
    events = sse_events(http.get(asked["stream_url"]).text)
    streamed = "".join(str(data["text"]) for kind, data in events if kind == "token")
    assert "95" not in streamed and "27 days" in streamed
    grounding = next(data for kind, data in events if kind == "grounding")
    assert grounding["shown"] == "evidence" and "27 days" in grounding["evidence"]["html"]  # type: ignore[index]


def _answered(collection: Collection, policy: str) -> Answer:
    """Ask and answer in this process with the inventing generator, then ground under `policy`."""
    conversation = Conversation.objects.create(collection=collection)
    answer = Answer.objects.create(conversation=conversation, question=QUESTION)
    with component_configured("generator", INVENTING), override_settings(GROUNDING_POLICY=policy):
        answer_generate(answer_id=answer.id)
        return answer_ground(answer_id=answer.id)


def test_evidence_is_returned_under_the_shown_answer(
    celery_worker_process: WorkerProcess, handbook: Collection
) -> None:
    answer = _answered(handbook, "evidence")
    out = answer_out(answer_view(answer))
    assert out.grounding is not None and out.grounding.flagged is True
    assert out.shown == "answer" and out.answer == out.text == INVENTED
    assert out.evidence is not None and "27 days" in out.evidence.text and "[1]" in out.evidence.text
    assert [c.n for c in out.evidence.citations] == answer.evidence_citations
    assert out.evidence.citations[0].page == 2 and "27 days" in out.evidence.citations[0].text


def test_annotate_computes_no_evidence(celery_worker_process: WorkerProcess, handbook: Collection) -> None:
    answer = _answered(handbook, "annotate")
    assert answer.grounding_flagged is True
    assert answer.evidence_text == "" and answer.shown == Answer.Shown.ANSWER
    out = answer_out(answer_view(answer))
    assert out.evidence is None and out.shown == "answer" and out.answer == INVENTED


def test_withhold_shows_the_evidence_when_the_scorer_fails(
    celery_worker_process: WorkerProcess, handbook: Collection
) -> None:
    """A judge whose model server does not answer: grounding fails, and the unchecked answer is not shown."""
    from chat.tasks import score_answer
    from llm.generators import generator_build

    conversation = Conversation.objects.create(collection=handbook)
    answer = Answer.objects.create(conversation=conversation, question=QUESTION)
    unreachable = generator_build(
        backend="openai", base_url="http://127.0.0.1:9/v1", model="m", connect_timeout=1.0
    )
    with (
        component_configured("generator", INVENTING),
        component_configured("scorer", "llm.grounding.judge.LlmJudgeScorer", generator=unreachable),
        override_settings(GROUNDING_POLICY="withhold"),
    ):
        answer_generate(answer_id=answer.id)
        score_answer(answer.id)
    answer.refresh_from_db()
    assert answer.grounding_status == Answer.Grounding.FAILED
    out = answer_out(answer_view(answer))
    assert out.shown == "evidence" and "27 days" in out.answer and out.text == INVENTED
