"""Ask → gpu-queue task in a real worker (the default extractive backend) → streamed answer with citations."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from chat.models import Answer
from ingestion.models import Chunk, Collection, Document
from ingestion.services import document_delete, document_reindex, document_upload
from llm.prompts import NOT_IN_DOCUMENTS
from tests.conftest import HANDBOOK, WorkerProcess, sse_events, wait_for
from tests.grants import SYSTEM, grant
from tests.pdf_factory import make_text_pdf

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]



@pytest.fixture
def handbook(tmp_path: Path) -> Collection:
    collection = Collection.objects.create(name="Handbook")
    pdf = make_text_pdf(tmp_path / "handbook.pdf", HANDBOOK)
    document_upload(
        collection=collection, upload=SimpleUploadedFile("Employee Handbook.pdf", pdf.read_bytes()), actor=SYSTEM
    )
    return collection


@pytest.fixture
def member(handbook: Collection) -> Client:
    user = get_user_model().objects.create_user("erin", password="pw-erin-123456")
    grant(handbook, user=user)
    client = Client()
    client.force_login(user)
    return client


def _ready(collection: Collection) -> None:
    wait_for(
        lambda: Document.objects.filter(collection=collection, status=Document.Status.READY).exists(),
        timeout=180,
        what="the handbook to be indexed",
    )


def test_ask_streams_a_cited_answer_and_records_it(
    celery_worker_process: WorkerProcess, handbook: Collection, member: Client
) -> None:
    _ready(handbook)
    response = member.post(
        "/ask/", {"collection": handbook.id, "question": "How many days of paid annual leave?"}
    )
    assert response.status_code == 200, response.content
    ids = response.json()
    body = b"".join(member.get(ids["stream_url"])).decode()  # type: ignore[arg-type]
    events = sse_events(body)
    kinds = [kind for kind, _ in events]
    assert kinds.count("token") >= 1 and "done" in kinds

    answer = wait_for(
        lambda: Answer.objects.filter(id=ids["answer"], grounding_score__isnull=False).first(),
        timeout=120,
        what="the grounding score",
    )
    assert answer.status == Answer.Status.DONE and answer.model_called and answer.text
    streamed = "".join(str(data["text"]) for kind, data in events if kind == "token")
    assert streamed.strip() == answer.text
    # The default backend answers with the handbook's own sentence, cited.
    assert answer.backend == "extractive" and "27 days of paid annual leave" in answer.text
    assert answer.citations and answer.citations[0] == 1 and answer.text.count("[1]") >= 1
    assert answer.prompt_tokens and answer.prompt_tokens > 50
    assert answer.ttft_ms is not None and answer.generation_ms and answer.generation_ms >= answer.ttft_ms
    # The passage with the answer was retrieved and given to the model, numbered, with its page.
    first = answer.passages[0]
    assert first["document_name"] == "Employee Handbook.pdf" and first["page_start"] == 2
    assert all(n in {p["n"] for p in answer.passages} for n in answer.citations)
    assert answer.grounding_scorer and answer.grounding_flagged is not None

    # The snapshot says where the passage sits on its page; the viewer shows that page with it highlighted.
    assert first["media_type"] == "application/pdf" and first["boxes"] and {b[0] for b in first["boxes"]} == {2}
    viewer = member.get(f"/answers/{answer.id}/sources/{first['n']}/").content.decode()
    assert "/pages/2.png" in viewer and 'class="highlight"' in viewer and "27 days" in viewer

    # The passage a citation points at opens with its document and page; another user's cannot.
    page = member.get(f"/passages/{first['chunk_id']}/")
    assert page.status_code == 200 and b"27 days" in page.content and b"Page 2" in page.content
    outsider = get_user_model().objects.create_user("mallory", password="pw-mallory-123456")
    other = Client()
    other.force_login(outsider)
    assert other.get(f"/passages/{first['chunk_id']}/").status_code == 404
    assert other.get(f"/answers/{answer.id}/").status_code == 404


def test_follow_up_question_gets_a_standalone_query(
    celery_worker_process: WorkerProcess, handbook: Collection, member: Client
) -> None:
    _ready(handbook)
    first = member.post(
        "/ask/", {"collection": handbook.id, "question": "What is the daily meal allowance on trips?"}
    ).json()
    wait_for(
        lambda: Answer.objects.filter(id=first["answer"], status=Answer.Status.DONE).exists(),
        timeout=180,
        what="answer 1",
    )
    second = member.post(
        "/ask/", {"conversation": first["conversation"], "question": "And in which currency?"}
    ).json()
    assert second["conversation"] == first["conversation"]
    answer = wait_for(
        lambda: Answer.objects.filter(id=second["answer"], status__in=["done", "failed"]).first(),
        timeout=180,
        what="answer 2",
    )
    assert answer.status == Answer.Status.DONE
    assert answer.standalone_query != "And in which currency?"
    assert any(word in answer.standalone_query.lower() for word in ("meal", "allowance", "trip", "travel"))


def test_no_relevant_passage_means_no_model_call(
    celery_worker_process: WorkerProcess, handbook: Collection, member: Client
) -> None:
    _ready(handbook)
    ids = member.post(
        "/ask/",
        {"collection": handbook.id, "question": "What is the melting point of tungsten carbide in kelvin?"},
    ).json()
    answer = wait_for(
        lambda: Answer.objects.filter(id=ids["answer"], status__in=["done", "failed"]).first(),
        timeout=120,
        what="answer",
    )
    assert answer.status == Answer.Status.DONE
    assert answer.text == NOT_IN_DOCUMENTS
    assert answer.model_called is False and answer.prompt_tokens is None and answer.passages == []


def test_asking_needs_access_to_the_collection(handbook: Collection) -> None:
    stranger = get_user_model().objects.create_user("sam", password="pw-sam-123456")
    client = Client()
    assert client.post("/ask/", {"collection": handbook.id, "question": "hi"}).status_code == 302  # to login
    client.force_login(stranger)
    assert client.post("/ask/", {"collection": handbook.id, "question": "hi"}).status_code == 404
    assert not Answer.objects.exists()


def test_an_answer_keeps_its_citations_through_reindexing_and_deletion(
    celery_worker_process: WorkerProcess, handbook: Collection, member: Client
) -> None:
    """Re-indexing replaces every chunk (new ids); the answer's citations must show the same passage, page and
    highlight after it, and say the document is gone after it is deleted, never 404."""
    _ready(handbook)
    ids = member.post("/ask/", {"collection": handbook.id, "question": "How many days of paid annual leave?"}).json()
    answer = wait_for(
        lambda: Answer.objects.filter(id=ids["answer"], status=Answer.Status.DONE).first(), timeout=180, what="the answer"
    )
    record = next(p for p in answer.passages if p["page_start"] == 2)
    viewer = f"/answers/{answer.id}/sources/{record['n']}/"
    before = member.get(viewer).content.decode()
    highlights = [line for line in before.splitlines() if 'class="highlight"' in line]
    assert highlights and "27 days" in before
    document = Document.objects.get(collection=handbook)
    old_chunks = set(Chunk.objects.filter(document=document).values_list("id", flat=True))

    document_reindex(document=document, actor=SYSTEM)
    wait_for(
        lambda: Document.objects.filter(id=document.id, status=Document.Status.READY).exists()
        and not old_chunks & set(Chunk.objects.filter(document=document).values_list("id", flat=True)),
        timeout=180, what="the re-index to replace the chunks",
    )
    after = member.get(viewer).content.decode()
    assert [line for line in after.splitlines() if 'class="highlight"' in line] == highlights
    assert "27 days" in after and "/pages/2.png" in after
    assert member.get(f"/documents/{document.id}/pages/2.png").status_code == 200
    assert member.get(f"/passages/{record['chunk_id']}/").status_code == 404  # the chunk itself is gone
    assert Answer.objects.get(id=answer.id).passages == answer.passages  # the snapshot itself is untouched

    document_delete(document=document, actor=SYSTEM)
    gone = member.get(viewer)
    assert gone.status_code == 200 and "was deleted" in gone.content.decode() and "27 days" in gone.content.decode()
    source = next(s for s in member.get(f"/answers/{answer.id}/").json()["sources"] if s["n"] == record["n"])
    assert source["document_deleted"] is True and source["text"] == record["text"]
