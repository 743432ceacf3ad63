"""Access at every request: a grant removed (or a group left) refuses the very next request on every path,
browser and API, and nothing of the collection reaches the response; readers read, editors also change
documents and members, only in their collections; staff everywhere.

In-process (Django's test client against the real URLconf and database); nothing is queued, since these
tests run inside a transaction and work is queued on commit.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.test.client import MULTIPART_CONTENT

from api.keys import api_key_create
from api.models import KeyConversation
from audit.models import AuditEvent
from chat.models import Answer, Conversation, PassageRecord
from ingestion.access import collections_editable, collections_readable
from ingestion.models import Chunk, Collection, CollectionGrant, Document
from tests import pdf_factory
from tests.grants import SYSTEM, grant, ungrant
from tests.test_api import bearer, post_json

pytestmark = pytest.mark.django_db

SECRET = "Project Nightjar acquisition terms"  # the text nothing may leak once access is gone
PDF = b"%PDF-1.4 a small test file"


def _user(name: str, *, staff: bool = False) -> User:
    return User.objects.create_user(name, password=f"pw-{name}-123456", is_staff=staff)


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _world(collection: Collection, user: User | None) -> dict[str, Any]:
    """A document with a passage, and a conversation with an answer that cites it, all holding SECRET."""
    pdf = pdf_factory.make_text_pdf(Path(tempfile.mkdtemp()) / f"{SECRET}.pdf", [f"{SECRET}: 40 million"])
    document = Document.objects.create(
        collection=collection, original_name=f"{SECRET}.pdf", sha256=secrets.token_hex(32), size=pdf.stat().st_size,
        status=Document.Status.READY, file=SimpleUploadedFile(pdf.name, pdf.read_bytes()), page_count=1,
    )
    chunk = Chunk.objects.create(
        document=document, ordinal=0, text=f"{SECRET}: 40 million", page_start=1, page_end=1, token_count=3,
        embedding=b"\0" * 16,
    )
    record = PassageRecord(1, chunk.id, document.id, document.original_name, 1, 1, 0.8, chunk.text)
    conversation = Conversation.objects.create(collection=collection, user=user, title=SECRET)
    answer = Answer.objects.create(
        conversation=conversation, question=f"What are the {SECRET}?", text=f"{SECRET} [1].", status=Answer.Status.DONE,
        passages=[record.to_json()], citations=[1], grounding_status=Answer.Grounding.SCORED, grounding_score=0.9,
        grounding_flagged=False,
    )
    return {"document": document, "chunk": chunk, "conversation": conversation, "answer": answer}


def _browser_requests(w: dict[str, Any], collection: Collection) -> dict[str, Callable[[Client], Any]]:
    """Every browser path that shows or uses the collection's passages, files or answers."""
    answer, conversation, chunk = w["answer"], w["conversation"], w["chunk"]
    return {
        "chat page": lambda c: c.get("/"),
        "conversation": lambda c: c.get(f"/c/{conversation.id}/"),
        "answer": lambda c: c.get(f"/answers/{answer.id}/"),
        "stream": lambda c: c.get(f"/answers/{answer.id}/stream/"),
        "passage": lambda c: c.get(f"/passages/{chunk.id}/"),
        "citation viewer": lambda c: c.get(f"/answers/{answer.id}/sources/1/"),
        "original file": lambda c: c.get(f"/documents/{w['document'].id}/file/"),
        "page image": lambda c: c.get(f"/documents/{w['document'].id}/pages/1.png"),
        "feedback": lambda c: c.post(f"/answers/{answer.id}/feedback/", {"value": "down", "comment": "x"}),
        "ask in the conversation": lambda c: c.post("/ask/", {"conversation": conversation.id, "question": "And?"}),
        "ask in the collection": lambda c: c.post("/ask/", {"collection": collection.id, "question": "Terms?"}),
    }


def _body(response: Any) -> bytes:
    if getattr(response, "streaming", False):
        from tests.test_api import streamed

        return streamed(response).encode()
    return bytes(response.content)


@pytest.mark.parametrize("via", ["user", "group"])
def test_a_revoked_reader_is_refused_at_the_next_request_on_every_browser_path(via: str) -> None:
    """Fails if any browser path checks only that a conversation is the user's, or caches a grant."""
    collection = Collection.objects.create(name="Deals")
    reader = _user("rita")
    team = Group.objects.create(name="deal-team")
    if via == "group":
        reader.groups.add(team)
        grant(collection, group=team)
    else:
        grant(collection, user=reader)
    w = _world(collection, reader)
    client = _client(reader)
    paths = _browser_requests(w, collection)
    for name in ("chat page", "conversation", "answer", "stream", "passage", "citation viewer"):
        response = paths[name](client)
        assert response.status_code == 200 and SECRET.encode() in _body(response), name

    if via == "group":
        reader.groups.remove(team)  # what the next single sign-on does when the provider drops the group
    else:
        ungrant(collection, user=reader)
    answers_before = Answer.objects.count()
    for name, request in paths.items():
        response = request(client)
        # The chat page still opens (other collections may be granted), without this one's conversations.
        assert response.status_code == (200 if name == "chat page" else 404), (name, response.status_code)
        assert SECRET.encode() not in _body(response), name
    assert Answer.objects.count() == answers_before  # nothing was asked
    assert Answer.objects.get(id=w["answer"].id).feedback is None
    assert not collections_readable(user=reader).exists()


def _documents_requests(w: dict[str, Any], collection: Collection) -> dict[str, Callable[[Client], Any]]:
    document = w["document"]
    upload = {"collection": collection.id, "files": SimpleUploadedFile("new.pdf", PDF)}
    members = f"/documents/collections/{collection.slug}/members/"
    return {
        "documents page": lambda c: c.get(f"/documents/?collection={collection.slug}"),
        "status": lambda c: c.get(f"/documents/status/?collection={collection.slug}"),
        "members page": lambda c: c.get(members),
        "upload": lambda c: c.post("/documents/upload/", upload, content_type=MULTIPART_CONTENT),
        "reindex": lambda c: c.post(f"/documents/{document.id}/reindex/"),
        "delete": lambda c: c.post(f"/documents/{document.id}/delete/"),
        "add member": lambda c: c.post(f"{members}add/", {"kind": "group", "name": "outsiders", "role": "editor"}),
    }


def test_a_revoked_editor_is_refused_at_the_next_request_on_every_documents_path() -> None:
    collection = Collection.objects.create(name="Deals")
    editor = _user("eddie")
    grant(collection, user=editor, role="editor")
    w = _world(collection, None)
    client = _client(editor)
    paths = _documents_requests(w, collection)
    shows = {"documents page": SECRET, "status": SECRET, "members page": 'data-name="eddie"'}
    for name, marker in shows.items():
        response = paths[name](client)
        assert response.status_code == 200 and marker.encode() in response.content, name

    ungrant(collection, user=editor)
    for name, request in paths.items():
        response = request(client)
        assert response.status_code == 404, (name, response.status_code)
        assert SECRET.encode() not in response.content and b"eddie" not in response.content, name
    assert list(Document.objects.values_list("id", "status")) == [(w["document"].id, "ready")]
    assert not Group.objects.filter(name="outsiders").exists()


def test_readers_read_and_editors_change_documents_only_in_their_collections() -> None:
    """Fails if a reader can upload, re-index or delete, or an editor can outside their collection."""
    mine, other = Collection.objects.create(name="Mine"), Collection.objects.create(name="Other")
    reader, editor = _user("rhea"), _user("ed")
    grant(mine, user=reader)
    grant(mine, user=editor, role="editor")
    grant(other, user=editor)  # a reader there
    in_mine, in_other = _world(mine, None), _world(other, None)

    as_reader = _documents_requests(in_mine, mine)
    for name, request in as_reader.items():
        assert request(_client(reader)).status_code == 404, name
    assert Document.objects.count() == 2 and not CollectionGrant.objects.filter(group__isnull=False).exists()

    as_editor_elsewhere = _documents_requests(in_other, other)
    for name, request in as_editor_elsewhere.items():
        assert request(_client(editor)).status_code == 404, name
    assert Document.objects.filter(collection=other).count() == 1

    client = _client(editor)
    page = client.get("/documents/")
    assert page.status_code == 200 and b"Mine" in page.content and b"Other" not in page.content
    uploaded = client.post(
        "/documents/upload/", {"collection": mine.id, "files": SimpleUploadedFile("new.pdf", PDF)}
    )
    assert uploaded.status_code == 302
    new = Document.objects.get(collection=mine, original_name="new.pdf")
    assert new.uploaded_by == editor and new.uploader == "ed"
    assert client.post(f"/documents/{new.id}/reindex/").status_code == 302
    assert client.post(f"/documents/{in_mine['document'].id}/delete/").status_code == 302
    assert not Document.objects.filter(id=in_mine["document"].id).exists()
    assert set(collections_editable(user=editor)) == {mine} and set(collections_readable(user=editor)) == {mine, other}


def test_staff_are_above_every_grant() -> None:
    collection = Collection.objects.create(name="Deals")
    staff = _user("sam", staff=True)
    w = _world(collection, staff)
    client = _client(staff)
    for name, request in _browser_requests(w, collection).items():
        if name.startswith(("ask", "feedback")):
            continue
        assert request(client).status_code == 200, name
    for name in ("documents page", "status", "members page"):
        assert _documents_requests(w, collection)[name](client).status_code == 200, name


def test_the_members_page_grants_changes_and_removes_with_an_audit_record_each() -> None:
    collection = Collection.objects.create(name="Deals", slug="deals")
    editor, dana = _user("ed"), _user("dana")
    grant(collection, user=editor, role="editor")
    client = _client(editor)
    base = "/documents/collections/deals/members/"
    AuditEvent.objects.filter(action__startswith="grant").expire()

    assert client.post(f"{base}add/", {"kind": "group", "name": "sales", "role": "reader"}).status_code == 302
    assert client.post(f"{base}add/", {"kind": "user", "name": "dana", "role": "editor"}).status_code == 302
    missing = client.post(f"{base}add/", {"kind": "user", "name": "nobody", "role": "reader"})
    assert missing.status_code == 400 and b"No user 'nobody'" in missing.content
    sales = CollectionGrant.objects.get(collection=collection, group__name="sales")
    assert client.post(f"{base}{sales.id}/role/", {"role": "editor"}).status_code == 302
    dana_grant = CollectionGrant.objects.get(collection=collection, user=dana)
    assert client.post(f"{base}{dana_grant.id}/remove/").status_code == 302

    page = client.get(base).content.decode()
    assert 'data-name="sales" data-role="editor"' in page and 'data-name="dana"' not in page
    records = list(AuditEvent.objects.filter(action__startswith="grant").order_by("id"))
    assert [(r.action, r.target_name, r.details.get("role"), r.actor_name, r.collection) for r in records] == [
        ("grant_add", "group:sales", "reader", "ed", "deals"),
        ("grant_add", "user:dana", "editor", "ed", "deals"),
        ("grant_change", "group:sales", "editor", "ed", "deals"),
        ("grant_remove", "user:dana", "editor", "ed", "deals"),
    ]
    assert records[2].details["previous_role"] == "reader"


def test_an_editor_who_removes_their_own_grant_is_sent_to_the_chat() -> None:
    collection = Collection.objects.create(name="Deals", slug="deals")
    editor = _user("ed")
    own = grant(collection, user=editor, role="editor")
    response = _client(editor).post(f"/documents/collections/deals/members/{own.id}/remove/")
    assert response.status_code == 302 and response["Location"] == "/"
    assert not collections_editable(user=editor).exists()


def _api_requests(w: dict[str, Any], collection: Collection) -> dict[str, Callable[[Client, str], Any]]:
    answer, conversation, document = w["answer"], w["conversation"], w["document"]
    ask = {"question": "Terms?", "collection": collection.slug}
    completion = {"model": collection.slug, "messages": [{"role": "user", "content": "Terms?"}]}
    return {
        "collections": lambda c, k: c.get("/api/v1/collections", headers=bearer(k)),
        "models": lambda c, k: c.get("/v1/models", headers=bearer(k)),
        "documents": lambda c, k: c.get("/api/v1/documents", headers=bearer(k)),
        "document": lambda c, k: c.get(f"/api/v1/documents/{document.id}", headers=bearer(k)),
        "original file": lambda c, k: c.get(f"/api/v1/documents/{document.id}/file", headers=bearer(k)),
        "page image": lambda c, k: c.get(f"/api/v1/documents/{document.id}/pages/1", headers=bearer(k)),
        "conversations": lambda c, k: c.get("/api/v1/conversations", headers=bearer(k)),
        "conversation": lambda c, k: c.get(f"/api/v1/conversations/{conversation.id}", headers=bearer(k)),
        "answer": lambda c, k: c.get(f"/api/v1/answers/{answer.id}", headers=bearer(k)),
        "feedback": lambda c, k: post_json(c, f"/api/v1/answers/{answer.id}/feedback", {"value": "down"}, k),
        "ask in the collection": lambda c, k: post_json(c, "/api/v1/ask", ask, k),
        "ask in the conversation": lambda c, k: post_json(
            c, "/api/v1/ask", {"question": "And?", "conversation": conversation.id}, k
        ),
        "chat completions": lambda c, k: post_json(c, "/v1/chat/completions", completion, k),
        "upload": lambda c, k: c.post(
            "/api/v1/documents", {"collection": collection.slug, "file": SimpleUploadedFile("n.pdf", PDF)},
            headers=bearer(k),
        ),
        "reindex": lambda c, k: c.post(f"/api/v1/documents/{document.id}/reindex", headers=bearer(k)),
        "delete": lambda c, k: c.delete(f"/api/v1/documents/{document.id}", headers=bearer(k)),
    }


def test_a_key_whose_collection_is_taken_away_is_refused_at_the_next_request_on_every_api_path(client: Client) -> None:
    collection = Collection.objects.create(name="Deals")
    # Two collections stay: with one, chat/completions would answer from it whatever `model` names.
    kept = [Collection.objects.create(name="Kept"), Collection.objects.create(name="Also kept")]
    issued = api_key_create(name="bot", collections=[collection, *kept], can_manage_documents=True, actor=SYSTEM)
    w = _world(collection, None)
    KeyConversation.objects.create(conversation=w["conversation"], key=issued.key)
    paths = _api_requests(w, collection)
    for name in ("collections", "documents", "document", "conversations", "conversation", "answer"):
        response = paths[name](client, issued.secret)
        assert response.status_code == 200 and (name == "collections" or SECRET.encode() in response.content), name

    issued.key.collections.remove(collection)
    answers_before = Answer.objects.count()
    for name, request in paths.items():
        response = request(client, issued.secret)
        assert SECRET.encode() not in response.content, name
        if name in ("collections", "models", "documents", "conversations"):
            assert response.status_code == 200 and collection.slug.encode() not in response.content, name
        else:
            assert response.status_code in (403, 404), (name, response.status_code, response.content)
    assert Answer.objects.count() == answers_before
    assert list(Document.objects.values_list("collection_id", "status")) == [(collection.id, "ready")]


def test_an_api_key_without_document_rights_cannot_change_documents(client: Client) -> None:
    collection = Collection.objects.create(name="Deals")
    reader = api_key_create(name="reader", collections=[collection], actor=SYSTEM).secret
    w = _world(collection, None)
    paths = _api_requests(w, collection)
    for name in ("upload", "reindex", "delete"):
        response = paths[name](client, reader)
        assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied", name
    assert list(Document.objects.values_list("id", "status")) == [(w["document"].id, "ready")]


def test_the_api_upload_records_its_key_as_uploader(client: Client) -> None:
    collection = Collection.objects.create(name="Deals")
    issued = api_key_create(name="librarian", collections=[collection], can_manage_documents=True, actor=SYSTEM)
    response = client.post(
        "/api/v1/documents", {"collection": collection.slug, "file": SimpleUploadedFile("n.pdf", PDF)},
        headers=bearer(issued.secret),
    )
    assert response.status_code == 201, response.content
    document = Document.objects.get(id=json.loads(response.content)["document"]["id"])
    assert document.uploader == f"API key {issued.key.prefix} (librarian)" and document.uploaded_by is None
