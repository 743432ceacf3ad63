"""The hallucination log read back: rates with intervals, dashboard data, chart, metrics, commands."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from chat import reports
from chat.models import Answer, Conversation
from ingestion.models import Collection

pytestmark = pytest.mark.django_db


def _answers(collection: Collection, backend: str, flags: list[bool], *, days_ago: int = 0) -> None:
    conversation = Conversation.objects.create(collection=collection, title="t")
    for i, flagged in enumerate(flags):
        answer = Answer.objects.create(
            conversation=conversation, question=f"q{i}", text="a", status="done", model_called=True,
            backend=backend, grounding_score=0.1 if flagged else 0.9, grounding_flagged=flagged,
            grounding_threshold=0.5, grounding_scorer="lexical-embedding",
            grounding_spans=[{"start": 0, "end": 1, "text": "a", "support": 0.1}] if flagged else [],
        )
        Answer.objects.filter(id=answer.id).update(created_at=timezone.now() - timedelta(days=days_ago))
    # Not written by the model (nothing relevant retrieved): never counted.
    Answer.objects.create(conversation=conversation, question="x", text="n", status="done", model_called=False,
                          grounding_score=1.0, grounding_flagged=False)


@pytest.fixture
def log() -> dict[str, Collection]:
    hr, it = Collection.objects.create(name="HR"), Collection.objects.create(name="IT")
    _answers(hr, "llamacpp", [True, False, False, False])
    _answers(hr, "llamacpp", [True, True], days_ago=2)
    _answers(it, "transformers", [False, False, False])
    _answers(it, "transformers", [True], days_ago=40)  # outside a 7-day window
    return {"hr": hr, "it": it}


def test_rates_per_day_collection_and_backend_with_intervals(log: dict[str, Collection]) -> None:
    since = timezone.now() - timedelta(days=7)
    total = reports.hallucination_rates(since=since, by_day=False, by_collection=False, by_backend=False)
    assert [(t.answers, t.flagged) for t in total] == [(9, 3)]
    assert total[0].low < 3 / 9 < total[0].high
    groups = {(r.collection, r.backend): (r.answers, r.flagged) for r in reports.hallucination_rates(since=since, by_day=False)}
    assert groups == {("HR", "llamacpp"): (6, 3), ("IT", "transformers"): (3, 0)}
    daily = reports.hallucination_rates(since=since, by_collection=False, by_backend=False)
    assert [(r.answers, r.flagged) for r in daily] == [(2, 2), (7, 1)]


def test_wilson_interval_known_values() -> None:
    low, high = reports.wilson_interval(3, 10)
    assert (round(low, 3), round(high, 3)) == (0.108, 0.603)
    assert reports.wilson_interval(0, 0) == (0.0, 0.0)


def test_dashboard_page_data_and_chart_for_staff_only(log: dict[str, Collection], admin_client: Client) -> None:
    data = admin_client.get("/grounding/data.json?days=7").json()
    rows = {(r["collection"], r["backend"], r["day"]): (r["answers"], r["flagged"]) for r in data["rows"]}
    assert sum(a for a, _ in rows.values()) == 9 and sum(f for _, f in rows.values()) == 3
    page = admin_client.get("/grounding/?days=7").content.decode()
    assert "<svg" in page and page.count("<circle") == 3  # HR today, HR two days ago, IT today
    assert 'data-rate="1.0000"' in page and "3</strong> of <strong>9" in page
    user = get_user_model().objects.create_user("pat", password="pw-pat-123456")
    client = Client()
    client.force_login(user)
    assert client.get("/grounding/").status_code == 302
    assert client.get("/grounding/data.json").status_code == 302


def test_metrics_endpoint_needs_a_token_and_counts_answers(log: dict[str, Collection], settings: object) -> None:
    settings.METRICS_TOKEN = "scrape-secret"  # type: ignore[attr-defined]
    client = Client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").content.decode()
    assert 'rag_answers_total{adapter="",backend="llamacpp",collection="HR"} 6.0' in body
    assert 'rag_answers_flagged_total{adapter="",backend="transformers",collection="IT"} 1.0' in body
    assert 'rag_grounding_score_bucket{le="0.1"} 4.0' in body and "rag_grounding_score_count 10.0" in body


def test_hallucination_report_command(log: dict[str, Collection]) -> None:
    out = StringIO()
    call_command("hallucination_report", "--since", "7d", stdout=out)
    text = out.getvalue()
    assert "3/9 answers flagged = 33.3%" in text and "HR" in text and "transformers" in text


def test_eval_grounding_command_computes_metrics_for_known_predictions(tmp_path: Path) -> None:
    passage = "The warehouse in Aarhus stores 1,200 pallets. It opened in 2019 and employs 45 people."
    grounded = "The Aarhus warehouse stores 1,200 pallets."
    invented = "The Aarhus warehouse stores 9,870 pallets and is run by Margarethe Vandersloot."
    rows = [
        # (response, labelled hallucinated): the scorer flags the invented figures and name, not the copy.
        (invented, True), (grounded, True), (invented, False), (grounded, False),
    ]
    lines = [
        {
            "source_id": str(i), "task_type": "QA",
            "source": {"question": "How many pallets does the warehouse store?", "passages": passage},
            "responses": [{"response": r, "model": "m", "labels": [{"start": 0, "end": 5, "text": r[:5],
                                                                   "label_type": "Evident Baseless Info"}] if h else []}],
        }
        for i, (r, h) in enumerate(rows)
    ]
    path = tmp_path / "tiny.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    out = StringIO()
    call_command("eval_grounding", str(path), stdout=out)
    text = out.getvalue()
    # predicted = [T, F, T, F] against truth [T, T, F, F]: precision 0.5, recall 0.5, F1 0.5, balanced acc. 0.5
    overall = next(line for line in text.splitlines() if line.startswith("overall"))
    assert "P=0.500 R=0.500 F1=0.500 BAcc=0.500 n=4 pos=2" in overall, text


@pytest.mark.slow
def test_a_judge_that_answers_garbage_leaves_the_answer_unscored_and_counted_apart(
    log: dict[str, Collection], tmp_path: Path, admin_client: Client, settings: object
) -> None:
    """A real generator that cannot give verdicts (a tiny random-weight Mistral: its vocabulary has no digits
    and no SUPPORTED) judges a real answer: the answer must end "unscored", never grounded at 1.0."""
    from api.schemas import answer_out
    from chat.records import answer_view
    from chat.tasks import score_answer
    from llm.generators import generator_build
    from tests.components import component_configured
    from tests.llm_fixtures import tiny_mistral_build

    model = tiny_mistral_build(tmp_path / "tiny", generation={"suppress_tokens": [0, 1, 2, 3]}, window=4096)
    judge = generator_build(backend="transformers", model=str(model), quantization="none", local_files_only=True)
    conversation = Conversation.objects.create(collection=log["hr"], title="leave")
    answer = Answer.objects.create(
        conversation=conversation, question="How many days of leave?", status="done", model_called=True,
        backend="llamacpp", text="Employees get 27 days of paid leave [1]. The office has a rooftop pool.",
        passages=[{"n": 1, "chunk_id": 1, "document_id": 1, "document_name": "Handbook.pdf", "page_start": 2,
                   "page_end": 2, "score": 0.7, "text": "Every employee receives 27 days of paid annual leave."}],
    )
    with component_configured("scorer", "llm.grounding.judge.LlmJudgeScorer", generator=judge):
        score_answer(answer.id)
    answer.refresh_from_db()
    assert answer.grounding_status == Answer.Grounding.UNSCORED
    assert answer.grounding_score is None and answer.grounding_flagged is None and answer.grounding_spans == []
    grounding = answer_out(answer_view(answer)).grounding
    assert grounding is not None and (grounding.status, grounding.score, grounding.flagged) == ("unscored", None, None)
    assert admin_client.get(f"/answers/{answer.id}/").status_code == 404  # not the admin's conversation
    # Counted apart: the rate stays 3 of 9 scored answers, with one unscored beside it.
    since = timezone.now() - timedelta(days=7)
    (total,) = reports.hallucination_rates(since=since, by_day=False, by_collection=False, by_backend=False)
    assert (total.answers, total.flagged, total.unscored) == (9, 3, 1)
    page = admin_client.get("/grounding/?days=7").content.decode()
    assert "3</strong> of <strong>9" in page and 'id="unscored-total"><strong>1</strong>' in page
    settings.METRICS_TOKEN = "scrape-secret"  # type: ignore[attr-defined]
    body = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").content.decode()
    assert 'rag_answers_unscored_total{adapter="",backend="llamacpp",collection="HR"} 1.0' in body
    assert 'rag_answers_total{adapter="",backend="llamacpp",collection="HR"} 6.0' in body
    out = StringIO()
    call_command("hallucination_report", "--since", "7d", stdout=out)
    assert "3/9 answers flagged" in out.getvalue() and "1 more could not be scored" in out.getvalue()
