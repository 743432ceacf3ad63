"""The shape of the house: one loader per component kind, one place per job, errors mapped once.

These pin behaviours the restructuring promised: what the renderer links is what the parser counts, a
scorer that fails ends the wait for grounding, access is re-checked at each request, the OpenAI endpoint
refuses an over-long question instead of cutting it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from api.keys import api_key_create
from chat.follow import answer_follow
from chat.models import Answer, Conversation, PassageRecord
from chat.rendering import answer_html
from chat.services import MAX_QUESTION_CHARS
from chat.tasks import score_answer
from ingestion.models import Collection
from llm.citations import citations_parse
from llm.generators import generator_build
from ragsite.components import LoadsOnce, component, components_reset, shared
from tests.components import component_configured
from tests.grants import SYSTEM, grant, ungrant


def test_the_renderer_links_every_citation_the_parser_counts() -> None:
    text = "Leave is 27 days [2-4]; meals [1, 3] and [5][1]. Not citations: [2023], [9]."
    urls = {n: f"/passages/{n}/" for n in range(1, 6)}
    html = answer_html(text=text, passage_urls=urls)
    linked = [int(n) for n in __import__("re").findall(r'data-n="(\d+)"', html)]
    assert sorted(set(linked)) == sorted(citations_parse(answer=text, passage_count=5)) == [1, 2, 3, 4, 5]
    assert "[2023]" in html and "[9]" in html and linked.count(1) == 2


class _Slow(LoadsOnce):
    loads = 0

    def _load(self) -> None:
        type(self).loads += 1


def test_a_component_loads_once_whichever_threads_ask() -> None:
    instance = _Slow()
    threads = [threading.Thread(target=instance.warm_up) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    instance.warm_up()
    assert _Slow.loads == 1


def test_one_instance_per_kind_until_reset() -> None:
    components_reset()
    first = component("scorer")
    assert component("scorer") is first and shared(_Slow) is shared(_Slow)
    components_reset()
    assert component("scorer") is not first


def _answer(collection: Collection, user: Any = None, **fields: Any) -> Answer:
    conversation = Conversation.objects.create(collection=collection, user=user, title="t")
    record = PassageRecord(1, 1, 1, "Handbook.pdf", 2, 2, 0.7, "Employees receive 27 days of paid leave.")
    defaults: dict[str, Any] = {"question": "How many days?", "status": Answer.Status.DONE, "passages": [record.to_json()]}
    return Answer.objects.create(conversation=conversation, **{**defaults, **fields})


@pytest.mark.django_db(transaction=True)
def test_a_scorer_that_fails_settles_grounding_and_ends_the_stream() -> None:
    """Fails if a crashing scorer leaves the answer 'pending' (a browser stream would wait 10 minutes)."""
    collection = Collection.objects.create(name="Handbook")
    answer = _answer(collection, text="Employees receive 27 days of paid leave [1].")
    # A judge whose model server does not answer: a real scorer, failing for real.
    unreachable = generator_build(backend="openai", base_url="http://127.0.0.1:9/v1", model="m", connect_timeout=1.0)
    with component_configured("scorer", "llm.grounding.judge.LlmJudgeScorer", generator=unreachable):
        score_answer(answer.id)
    answer.refresh_from_db()
    assert answer.grounding_status == Answer.Grounding.FAILED and answer.grounding_score is None

    async def steps() -> list[str]:
        return [s.kind async for s in answer_follow(answer_id=answer.id, timeout_s=30, grounding_wait_s=30, poll_s=0.05)]

    assert asyncio.run(steps()) == ["token", "done", "grounding"]


@pytest.mark.django_db
def test_a_user_removed_from_a_collection_loses_its_old_conversations() -> None:
    """Fails if owning a conversation is enough to keep asking in a collection one may no longer read."""
    collection = Collection.objects.create(name="Handbook")
    user = get_user_model().objects.create_user("rita", password="pw-rita-123456")
    grant(collection, user=user)
    answer = _answer(collection, user=user, text="27 days [1].")
    client = Client()
    client.force_login(user)
    conversation = answer.conversation
    assert client.get(f"/c/{conversation.id}/").status_code == 200
    ungrant(collection, user=user)
    asked = client.post("/ask/", {"conversation": conversation.id, "question": "And next year?"})
    assert asked.status_code == 404 and asked.json()["error"]["code"] == "not_found"
    assert client.get(f"/c/{conversation.id}/").status_code == 404
    for path in (f"/answers/{answer.id}/", f"/answers/{answer.id}/stream/"):
        assert client.get(path).status_code == 404
    assert client.post(f"/answers/{answer.id}/feedback/", {"value": "up"}).status_code == 404
    assert Answer.objects.filter(conversation=conversation).count() == 1
    assert "27 days" not in client.get("/").content.decode()


@pytest.mark.django_db
def test_the_openai_endpoint_refuses_an_over_long_earlier_question(client: Client) -> None:
    collection = Collection.objects.create(name="Handbook", slug="handbook")
    key = api_key_create(name="bot", collections=[collection], actor=SYSTEM).secret
    messages = [
        {"role": "user", "content": "x" * (MAX_QUESTION_CHARS + 1)},
        {"role": "assistant", "content": "Earlier answer."},
        {"role": "user", "content": "How many days?"},
    ]
    response = client.post(
        "/v1/chat/completions", {"model": "handbook", "messages": messages}, content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_question"
    assert not Answer.objects.exists()
