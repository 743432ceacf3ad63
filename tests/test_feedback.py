"""Feedback a team can use: the staff page of rated answers, thumbs beside the hallucination rate, and
`manage.py export_feedback` writing exactly the answers, passages and thumbs the test created."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from chat.models import Answer, Conversation, PassageRecord
from ingestion.models import Collection

pytestmark = pytest.mark.django_db


def _answer(collection: Collection, question: str, *, feedback: int | None, comment: str = "", score: float = 0.8,
            flagged: bool = False, days_ago: float = 1, status: str = Answer.Status.DONE) -> Answer:
    conversation = Conversation.objects.create(collection=collection, title=question)
    records = [
        PassageRecord(1, 11, 7, "Handbook.pdf", 2, 2, 0.71, "Employees receive 27 days of paid leave."),
        PassageRecord(2, 12, 7, "Handbook.pdf", 3, 4, 0.42, "Meals are reimbursed up to 450 DKK."),
    ]
    done = status == Answer.Status.DONE  # a failed answer is never scored
    answer = Answer.objects.create(
        conversation=conversation, question=question, text=f"About {question}: 27 days [1].", status=status,
        passages=[r.to_json() for r in records], citations=[1], model_called=True, backend="llamacpp",
        model_name="smollm2", grounding_status=Answer.Grounding.SCORED if done else Answer.Grounding.PENDING,
        grounding_score=score if done else None, grounding_flagged=flagged if done else None, grounding_threshold=0.5, grounding_scorer="lexical-embedding",
        grounding_spans=[{"start": 0, "end": 5, "text": "About", "support": 0.1}] if flagged else [],
        feedback=feedback, feedback_comment=comment,
    )
    Answer.objects.filter(id=answer.id).update(created_at=timezone.now() - timedelta(days=days_ago))
    answer.refresh_from_db()
    return answer


@pytest.fixture
def answers() -> dict[str, Any]:
    handbook = Collection.objects.create(name="Handbook", slug="handbook")
    policies = Collection.objects.create(name="Policies", slug="policies")
    return {
        "up": _answer(handbook, "leave days", feedback=1, comment="spot on"),
        "down": _answer(handbook, "meal allowance", feedback=-1, comment="wrong number", score=0.2, flagged=True),
        "unrated": _answer(handbook, "working hours", feedback=None),
        "other": _answer(policies, "password rules", feedback=-1, days_ago=2),
        "old": _answer(handbook, "old question", feedback=1, days_ago=45),
        "failed": _answer(handbook, "broken", feedback=-1, status=Answer.Status.FAILED),
    }


def _export(*args: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    call_command("export_feedback", *args, stdout=out, stderr=io.StringIO())
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_export_feedback_writes_the_rated_answers_with_their_passages_and_thumbs(answers: dict[str, Any]) -> None:
    """Fails if the export misses a rated answer, includes another, or loses a field a dataset needs."""
    rows = _export("--since", "30d")
    expected = [answers["other"], answers["up"], answers["down"]]  # oldest first; unrated, old and failed left out
    assert [r["answer_id"] for r in rows] == sorted((a.id for a in expected), key=lambda i: Answer.objects.get(id=i).created_at)
    by_id = {r["answer_id"]: r for r in rows}
    up, down = by_id[answers["up"].id], by_id[answers["down"].id]
    assert up["question"] == "leave days" and up["answer"] == "About leave days: 27 days [1]."
    assert up["feedback"] == {"value": "up", "comment": "spot on"}
    assert down["feedback"] == {"value": "down", "comment": "wrong number"}
    assert up["grounding"]["score"] == 0.8 and up["grounding"]["flagged"] is False
    assert down["grounding"]["flagged"] is True and down["grounding"]["unsupported"][0]["text"] == "About"
    assert [(p["n"], p["document_name"], p["page_start"], p["cited"]) for p in up["passages"]] == [
        (1, "Handbook.pdf", 2, True), (2, "Handbook.pdf", 3, False),
    ]
    assert up["passages"][0]["text"] == "Employees receive 27 days of paid leave." and up["citations"] == [1]
    assert up["collection"] == "handbook" and by_id[answers["other"].id]["collection"] == "policies"

    assert {r["answer_id"] for r in _export("--since", "30d", "--collection", "policies")} == {answers["other"].id}
    assert {r["answer_id"] for r in _export("--since", "30d", "--thumbs", "down")} == {answers["down"].id, answers["other"].id}
    everything = {r["answer_id"] for r in _export("--since", "60d", "--all")}
    assert everything == {a.id for k, a in answers.items() if k != "failed"}


def test_export_feedback_to_a_file(answers: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "feedback.jsonl"
    call_command("export_feedback", "--since", "7d", "--output", str(target), stderr=io.StringIO())
    lines = target.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["feedback"]["value"] for line in lines)


def test_the_feedback_page_lists_and_filters_answers(answers: dict[str, Any]) -> None:
    staff = User.objects.create_user("root", password="pw-root-123456", is_staff=True)
    client = Client()
    client.force_login(staff)

    def listed(**query: str) -> set[int]:
        page = client.get("/feedback/", query)
        assert page.status_code == 200
        return {a.id for k, a in answers.items() if f'data-answer="{a.id}"' in page.content.decode()}

    assert listed() == {a.id for k, a in answers.items() if k != "failed"}
    assert listed(thumbs="down") == {answers["down"].id, answers["other"].id}
    assert listed(thumbs="rated", flagged="yes") == {answers["down"].id}
    assert listed(collection="policies") == {answers["other"].id}
    assert listed(since=(timezone.now() - timedelta(days=10)).date().isoformat(), thumbs="up") == {answers["up"].id}
    page = client.get("/feedback/", {"thumbs": "down", "flagged": "yes"}).content.decode()
    assert "wrong number" in page and "meal allowance" in page and "0.20" in page
    reader = User.objects.create_user("rita", password="pw-rita-123456")
    client.force_login(reader)
    assert client.get("/feedback/").status_code == 302


def test_the_dashboard_shows_thumbs_beside_the_hallucination_rate(answers: dict[str, Any]) -> None:
    staff = User.objects.create_user("root", password="pw-root-123456", is_staff=True)
    client = Client()
    client.force_login(staff)
    page = client.get("/grounding/", {"days": "30"}).content.decode()
    # Of the answers scored in 30 days: thumbs up on "leave days", down on "meal allowance" and "password rules".
    assert "1 up" in page and "2 down" in page
    data = client.get("/grounding/data.json", {"days": "30"}).json()
    assert sum(r["thumbs_up"] for r in data["rows"]) == 1 and sum(r["thumbs_down"] for r in data["rows"]) == 2
