"""The REST API in-process: keys, the auth matrix, scoping (nothing of another collection leaks), the error
format, rate limits, backpressure, request size, timeouts, documents, the admin and the command.

No worker runs here: these tests use the database inside a transaction, so nothing is ever queued (work
is queued on commit). The answers themselves are tested end to end in test_api_integration.py.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from api.keys import api_key_authenticate, api_key_create, api_key_revoke
from api.models import ApiKey, KeyConversation
from chat.models import Answer, Conversation
from ingestion.models import Collection, Document
from tests.grants import SYSTEM

pytestmark = pytest.mark.django_db

SECRET_NAME = "Secret Merger Plans"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post_json(client: Client, path: str, body: object, key: str | None = None) -> Any:
    return client.post(
        path, json.dumps(body), content_type="application/json", headers=bearer(key) if key else {}
    )


def error_of(response: object) -> dict[str, object]:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]  # type: ignore[no-any-return]


def streamed(response: object) -> str:
    """The whole body of an async streaming response (the test client does not iterate those itself)."""

    async def read() -> bytes:
        return b"".join([part async for part in response.streaming_content])  # type: ignore[attr-defined]

    return async_to_sync(read)().decode()


@pytest.fixture
def handbook() -> Collection:
    return Collection.objects.create(name="Handbook")


@pytest.fixture
def secret() -> Collection:
    return Collection.objects.create(name=SECRET_NAME)


def _document(collection: Collection, name: str, status: str = Document.Status.READY) -> Document:
    return Document.objects.create(
        collection=collection, original_name=name, sha256=name.ljust(64, "0")[:64], size=10, status=status
    )


def _answer(conversation: Conversation, question: str, status: str = Answer.Status.DONE) -> Answer:
    return Answer.objects.create(
        conversation=conversation, question=question, text="An answer.", status=status, source="api"
    )


@pytest.fixture
def key(handbook: Collection) -> str:
    return api_key_create(name="helpdesk", collections=[handbook], actor=SYSTEM).secret


@pytest.fixture
def world(handbook: Collection, secret: Collection) -> dict[str, Any]:
    """Another key's collection, documents, conversation and answer, and a browser user's conversation."""
    other = api_key_create(name="other bot", collections=[secret], actor=SYSTEM).key
    user = get_user_model().objects.create_user("erin", password="pw-erin-123456")
    theirs = Conversation.objects.create(collection=secret, title=SECRET_NAME)
    KeyConversation.objects.create(conversation=theirs, key=other)
    browser = Conversation.objects.create(collection=handbook, user=user, title="browser question")
    return {
        "doc": _document(handbook, "Handbook.pdf"),
        "secret_doc": _document(secret, f"{SECRET_NAME}.pdf"),
        "secret_conversation": theirs,
        "secret_answer": _answer(theirs, f"What are the {SECRET_NAME}?"),
        "browser_answer": _answer(browser, "browser question"),
    }


def test_key_is_shown_once_stored_hashed_and_checked(handbook: Collection) -> None:
    issued = api_key_create(name="bot", collections=[handbook], rate_limit_per_minute=5, actor=SYSTEM)
    marker, prefix, rest = issued.secret.split("_", 2)
    stored = ApiKey.objects.get(prefix=prefix)
    assert marker == "grk" and len(rest) >= 40
    assert rest not in stored.key_hash and stored.key_hash.startswith("hmac-sha256$")
    assert api_key_authenticate(raw=issued.secret).key.id == stored.id
    assert [c.slug for c in api_key_authenticate(raw=issued.secret).collections] == ["handbook"]


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("none", "missing_api_key"),
        ("malformed", "invalid_api_key"),
        ("wrong", "invalid_api_key"),
        ("revoked", "api_key_revoked"),
        ("expired", "api_key_expired"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/documents"),
        ("post", "/api/v1/ask"),
        ("get", "/api/v1/answers/1"),
        ("post", "/v1/chat/completions"),
        ("get", "/v1/models"),
    ],
)
def test_refused_keys_get_401_with_a_code(
    client: Client, handbook: Collection, case: str, code: str, method: str, path: str
) -> None:
    issued = api_key_create(name="bot", collections=[handbook], actor=SYSTEM)
    raw = {
        "none": None,
        "malformed": "sk-not-ours",
        "wrong": f"grk_{issued.key.prefix}_{'x' * 43}",
        "revoked": issued.secret,
        "expired": issued.secret,
    }[case]
    if case == "revoked":
        api_key_revoke(key=issued.key, actor=SYSTEM)
    if case == "expired":
        ApiKey.objects.filter(id=issued.key.id).update(expires_at=timezone.now() - timedelta(minutes=1))
    body = {
        "question": "hi",
        "collection": "handbook",
        "model": "handbook",
        "messages": [{"role": "user", "content": "hi"}],
    }
    response = getattr(client, method)(
        path,
        json.dumps(body) if method == "post" else None,
        content_type="application/json",
        headers=bearer(raw) if raw else {},
    )
    assert response.status_code == 401
    assert error_of(response)["code"] == code
    assert not Answer.objects.exists()


def test_x_api_key_header_works_too(client: Client, key: str) -> None:
    response = client.get("/v1/models", headers={"X-API-Key": key})
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["data"]] == ["handbook"]


def test_a_key_sees_nothing_of_other_collections(
    client: Client, key: str, world: dict[str, Any], secret: Collection
) -> None:
    h = bearer(key)
    doc, secret_doc = world["doc"], world["secret_doc"]
    secret_answer, browser_answer = world["secret_answer"], world["browser_answer"]
    conversation = world["secret_conversation"]
    responses = []

    listed = client.get("/api/v1/documents", headers=h)
    assert [d["id"] for d in listed.json()["items"]] == [doc.id]  # type: ignore[attr-defined]
    for path, status in [
        (f"/api/v1/documents?collection={secret.slug}", 403),
        (f"/api/v1/documents/{secret_doc.id}", 404),  # type: ignore[attr-defined]
        (f"/api/v1/conversations?collection={secret.slug}", 403),
        (f"/api/v1/conversations/{conversation.id}", 404),  # type: ignore[attr-defined]
        (f"/api/v1/answers/{secret_answer.id}", 404),  # type: ignore[attr-defined]
        (f"/api/v1/answers/{browser_answer.id}", 404),  # type: ignore[attr-defined]
    ]:
        response = client.get(path, headers=h)
        assert response.status_code == status, (path, response.content)
        responses.append(response)
    assert client.get("/api/v1/conversations", headers=h).json() == {"count": 0, "items": []}
    responses.append(
        post_json(client, f"/api/v1/answers/{secret_answer.id}/feedback", {"value": "down"}, key)
    )  # type: ignore[attr-defined]
    responses.append(
        post_json(client, "/api/v1/ask", {"question": "What are the plans?", "collection": secret.slug}, key)
    )
    responses.append(
        post_json(client, "/api/v1/ask", {"question": "And?", "conversation": conversation.id}, key)
    )  # type: ignore[attr-defined]
    assert [r.status_code for r in responses[-3:]] == [404, 403, 404]  # type: ignore[attr-defined]
    assert error_of(responses[-2])["code"] == "collection_forbidden"

    assert Answer.objects.count() == 2 and Conversation.objects.count() == 2  # nothing was asked
    assert Answer.objects.get(id=secret_answer.id).feedback is None  # type: ignore[attr-defined]
    for response in [listed, *responses]:  # (the slug a request named may be echoed; names and texts never)
        assert SECRET_NAME.encode() not in response.content  # type: ignore[attr-defined]


def test_chat_completions_model_must_be_one_of_the_keys_collections(
    client: Client, handbook: Collection, secret: Collection
) -> None:
    policies = Collection.objects.create(name="Policies")
    two = api_key_create(name="bot", collections=[handbook, policies], actor=SYSTEM).secret
    body = {"model": secret.slug, "messages": [{"role": "user", "content": "What are the plans?"}]}
    response = post_json(client, "/v1/chat/completions", body, two)
    assert response.status_code == 403  # type: ignore[attr-defined]
    assert error_of(response)["code"] == "collection_forbidden"
    assert SECRET_NAME.encode() not in response.content  # type: ignore[attr-defined]
    assert not Answer.objects.exists()


def test_every_error_has_the_json_format(client: Client, key: str, settings: object) -> None:
    h = bearer(key)
    unknown = client.get("/api/v1/nothing-here", headers=h)
    assert unknown.status_code == 404 and error_of(unknown)["code"] == "not_found"
    wrong_method = client.put("/api/v1/ask", headers=h)
    assert wrong_method.status_code == 405 and error_of(wrong_method)["code"] == "method_not_allowed"
    assert "POST" in wrong_method["Allow"]
    not_json = client.post("/api/v1/ask", "{not json", content_type="application/json", headers=h)
    assert not_json.status_code == 400 and error_of(not_json)["code"] == "invalid_request"
    invalid = post_json(client, "/api/v1/ask", {"question": "hi", "collection": "handbook", "top_k": 0}, key)
    error = error_of(invalid)
    assert invalid.status_code == 422 and error["code"] == "validation_error"  # type: ignore[attr-defined]
    assert "top_k" in str(error["message"]) and error["errors"]
    blank = post_json(client, "/api/v1/ask", {"question": "   ", "collection": "handbook"}, key)
    assert blank.status_code == 422  # type: ignore[attr-defined]
    no_target = post_json(client, "/api/v1/ask", {"question": "hi"}, key)
    assert no_target.status_code == 400 and error_of(no_target)["code"] == "invalid_request"  # type: ignore[attr-defined]
    settings.API_MAX_BODY_BYTES = 1000  # type: ignore[attr-defined]
    huge = post_json(client, "/api/v1/ask", {"question": "x" * 2000, "collection": "handbook"}, key)
    assert huge.status_code == 413 and error_of(huge)["code"] == "payload_too_large"  # type: ignore[attr-defined]
    assert not Answer.objects.exists()


def test_rate_limit_is_per_key_with_retry_after(client: Client, handbook: Collection) -> None:
    limited = api_key_create(name="chatty", collections=[handbook], rate_limit_per_minute=3, actor=SYSTEM).secret
    other = api_key_create(name="quiet", collections=[handbook], actor=SYSTEM).secret
    statuses = [client.get("/api/v1/collections", headers=bearer(limited)).status_code for _ in range(3)]
    refused = client.get("/api/v1/collections", headers=bearer(limited))
    assert statuses == [200, 200, 200] and refused.status_code == 429
    assert error_of(refused)["code"] == "rate_limited" and 1 <= int(refused["Retry-After"]) <= 60
    assert client.get("/api/v1/collections", headers=bearer(other)).status_code == 200


def test_a_full_gpu_queue_answers_503_at_once(
    client: Client, key: str, handbook: Collection, settings: object
) -> None:
    settings.API_MAX_QUEUE = 3  # type: ignore[attr-defined]
    waiting = Conversation.objects.create(collection=handbook, title="queue")
    for n in range(3):
        _answer(waiting, f"question {n}", status=Answer.Status.PENDING)
    ask = post_json(
        client, "/api/v1/ask", {"question": "How many leave days?", "collection": "handbook"}, key
    )
    body = {"model": "handbook", "messages": [{"role": "user", "content": "How many leave days?"}]}
    completion = post_json(client, "/v1/chat/completions", body, key)
    for response in (ask, completion):
        assert response.status_code == 503 and error_of(response)["code"] == "overloaded"  # type: ignore[attr-defined]
        assert int(response["Retry-After"]) == settings.API_BUSY_RETRY_AFTER  # type: ignore[attr-defined, index]
    assert Answer.objects.count() == 3 and Conversation.objects.count() == 1


def test_an_answer_not_ready_in_time_is_a_504_naming_it_and_is_logged_without_the_question(
    client: Client, key: str, settings: object, caplog: pytest.LogCaptureFixture
) -> None:
    settings.API_ANSWER_TIMEOUT = 0.3  # type: ignore[attr-defined]  # no worker here: it never finishes
    question = "What is the parental leave policy for contractors?"
    with caplog.at_level(logging.INFO, logger="api.requests"):
        response = post_json(client, "/api/v1/ask", {"question": question, "collection": "handbook"}, key)
    error = error_of(response)
    answer = Answer.objects.get()
    assert (
        response.status_code == 504 and error["code"] == "answer_timeout" and error["answer_id"] == answer.id
    )  # type: ignore[attr-defined]
    assert answer.source == "api" and answer.conversation.key_link.key_id == ApiKey.objects.get().id
    later = client.get(f"/api/v1/answers/{answer.id}", headers=bearer(key))
    assert (
        later.status_code == 200
        and later.json()["status"] == "pending"
        and later.json()["question"] == question
    )

    records = [
        r for r in caplog.records if r.name == "api.requests" and getattr(r, "path", "") == "/api/v1/ask"
    ]
    assert len(records) == 1
    logged = vars(records[0])
    assert logged["status"] == 504 and logged["key"] == answer.conversation.key_link.key_id and logged["ms"] >= 300
    assert all(question not in str(v) for r in caplog.records for v in vars(r).values())


def test_a_stream_that_times_out_ends_with_an_error_event(client: Client, key: str, settings: object) -> None:
    settings.API_ANSWER_TIMEOUT = 0.3  # type: ignore[attr-defined]
    response = post_json(
        client, "/api/v1/ask", {"question": "Leave days?", "collection": "handbook", "stream": True}, key
    )
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"  # type: ignore[attr-defined, index]
    body = streamed(response)
    events = [block.split("\n")[0] for block in body.strip().split("\n\n")]
    assert events == ["event: start", "event: error"]
    error = json.loads(body.strip().split("\n\n")[-1].split("data: ", 1)[1])["error"]
    assert error["code"] == "answer_timeout" and error["answer_id"] == Answer.objects.get().id


def test_documents_upload_status_reindex_delete(
    client: Client, handbook: Collection, settings: object
) -> None:
    reader = api_key_create(name="reader", collections=[handbook], actor=SYSTEM).secret
    admin_key = api_key_create(name="librarian", collections=[handbook], can_manage_documents=True, actor=SYSTEM).secret
    pdf = b"%PDF-1.4 tiny test file"

    def upload(key: str, content: bytes = pdf) -> Any:
        return client.post(
            "/api/v1/documents",
            {"collection": "handbook", "file": SimpleUploadedFile("Guide.pdf", content)},
            headers=bearer(key),
        )

    refused = upload(reader)
    assert refused.status_code == 403 and error_of(refused)["code"] == "permission_denied"  # type: ignore[attr-defined]
    created = upload(admin_key)
    assert created.status_code == 201, created.content  # type: ignore[attr-defined]
    document = created.json()["document"]  # type: ignore[attr-defined]
    assert (
        document["name"] == "Guide.pdf"
        and document["status"] == "queued"
        and document["collection"] == "handbook"
    )
    again = upload(admin_key)
    assert again.status_code == 200 and again.json()["created"] is False  # type: ignore[attr-defined]

    h = bearer(reader)
    assert client.get(f"/api/v1/documents/{document['id']}", headers=h).json()["status"] == "queued"
    assert client.get("/api/v1/documents?status=queued", headers=h).json()["count"] == 1
    assert client.get("/api/v1/documents?status=ready", headers=h).json() == {"count": 0, "items": []}
    assert client.get("/api/v1/documents?limit=1&offset=1", headers=h).json()["items"] == []
    assert client.delete(f"/api/v1/documents/{document['id']}", headers=h).status_code == 403
    reindexed = client.post(f"/api/v1/documents/{document['id']}/reindex", headers=bearer(admin_key))
    assert reindexed.status_code == 202 and reindexed.json()["status"] == "queued"
    assert client.delete(f"/api/v1/documents/{document['id']}", headers=bearer(admin_key)).status_code == 204
    assert client.get(f"/api/v1/documents/{document['id']}", headers=h).status_code == 404

    settings.MAX_UPLOAD_BYTES = 10  # type: ignore[attr-defined]
    too_big = upload(admin_key, pdf + b"more")
    assert too_big.status_code == 413 and error_of(too_big)["code"] == "payload_too_large"  # type: ignore[attr-defined]


def test_create_api_key_command_prints_the_key_once(handbook: Collection) -> None:
    out, err = StringIO(), StringIO()
    call_command(
        "create_api_key",
        "helpdesk bot",
        "--collection",
        "handbook",
        "--expires-in-days",
        "30",
        stdout=out,
        stderr=err,
    )
    secret = out.getvalue().strip()
    caller = api_key_authenticate(raw=secret)
    assert caller.key.name == "helpdesk bot" and caller.key.expires_at is not None
    assert secret not in err.getvalue() and caller.key.prefix in err.getvalue()
    with pytest.raises(CommandError, match="nope"):
        call_command("create_api_key", "bot", "--collection", "nope", stdout=StringIO(), stderr=StringIO())


def test_admin_creates_a_key_shows_it_once_and_revokes_it(client: Client, handbook: Collection) -> None:
    staff = get_user_model().objects.create_superuser("root", password="pw-root-123456")
    client.force_login(staff)
    response = client.post(
        "/admin/api/apikey/add/",
        {"name": "web bot", "collections": [handbook.id], "rate_limit_per_minute": 60},
    )
    assert response.status_code == 200, response.content
    key = ApiKey.objects.get()
    secret = response.context["secret"]
    assert secret.startswith(f"grk_{key.prefix}_") and secret.encode() in response.content
    assert key.created_by == staff and list(key.collections.all()) == [handbook]
    assert secret.encode() not in client.get(f"/admin/api/apikey/{key.id}/change/").content

    api = Client()
    assert api.get("/v1/models", headers=bearer(secret)).status_code == 200
    client.post("/admin/api/apikey/", {"action": "revoke", "_selected_action": [key.id]})
    assert error_of(api.get("/v1/models", headers=bearer(secret)))["code"] == "api_key_revoked"


def test_docs_and_schema_are_served(client: Client) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/ask", "/v1/chat/completions", "/api/v1/documents"} <= set(schema["paths"])
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
