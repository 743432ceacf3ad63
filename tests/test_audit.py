"""The audit trail: each audited action writes exactly one record naming the right actor (user, API key or
command) and address; records cannot be changed, through the admin, the ORM or SQL; the staff page
filters and exports them; retention deletes old ones and records that it did."""

from __future__ import annotations

import csv
import io
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone

from api.keys import api_key_create
from api.models import ApiKey
from audit.exceptions import AppendOnly
from audit.models import AuditEvent
from audit.services import Actor, audit_record
from chat.models import Answer, Conversation
from ingestion.models import Collection, Document
from tests.grants import SYSTEM, grant
from tests.test_api import bearer, post_json

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4 a small test file"
PASSWORD = "pw-audit-123456"


@pytest.fixture
def handbook() -> Collection:
    return Collection.objects.create(name="Handbook", slug="handbook")


def _user(name: str, **extra: Any) -> User:
    return User.objects.create_user(name, password=PASSWORD, **extra)


def _signed_in(user: User) -> Client:
    client = Client(REMOTE_ADDR="203.0.113.7")
    client.force_login(user)
    return client


def _one(action: str, run: Callable[[], Any]) -> AuditEvent:
    """Run an action and return the one record of `action` it wrote (failing if it wrote none or more)."""
    before = set(AuditEvent.objects.filter(action=action).values_list("id", flat=True))
    run()
    new = list(AuditEvent.objects.filter(action=action).exclude(id__in=before))
    assert len(new) == 1, f"{action}: {len(new)} records"
    return new[0]


def _document(collection: Collection, name: str = "Policy.pdf") -> Document:
    return Document.objects.create(
        collection=collection, original_name=name, sha256=secrets.token_hex(32), size=10, status="ready",
        file=SimpleUploadedFile(name, PDF),
    )


def test_sign_in_failed_sign_in_and_sign_out_are_recorded_with_the_address() -> None:
    _user("dana")
    client = Client(REMOTE_ADDR="198.51.100.4")
    failed = _one("sign_in_failed", lambda: client.post("/accounts/login/", {"username": "dana", "password": "wrong"}))
    assert (failed.actor_kind, failed.actor_name, failed.ip, failed.details) == (
        "anonymous", "dana", "198.51.100.4", {"method": "password"},
    )
    signed_in = _one("sign_in", lambda: client.post("/accounts/login/", {"username": "dana", "password": PASSWORD}))
    assert (signed_in.actor_kind, signed_in.actor_name, signed_in.ip) == ("user", "dana", "198.51.100.4")
    assert signed_in.details == {"method": "password"}
    signed_out = _one("sign_out", lambda: client.post("/accounts/logout/"))
    assert (signed_out.actor_name, signed_out.actor_id) == ("dana", signed_in.actor_id)


def test_uploads_deletions_and_reindexes_name_the_user_or_the_key(handbook: Collection) -> None:
    editor = _user("ed")
    grant(handbook, user=editor, role="editor")
    client = _signed_in(editor)
    upload = _one("document_upload", lambda: client.post(
        "/documents/upload/", {"collection": handbook.id, "files": SimpleUploadedFile("Leave.pdf", PDF)}
    ))
    document = Document.objects.get(original_name="Leave.pdf")
    assert (upload.actor_kind, upload.actor_name, upload.ip, upload.collection) == ("user", "ed", "203.0.113.7", "handbook")
    assert (upload.target_type, upload.target_id, upload.target_name) == ("document", document.id, "Leave.pdf")
    reindex = _one("document_reindex", lambda: client.post(f"/documents/{document.id}/reindex/"))
    assert (reindex.actor_name, reindex.target_id) == ("ed", document.id)
    deleted = _one("document_delete", lambda: client.post(f"/documents/{document.id}/delete/"))
    assert (deleted.actor_name, deleted.target_id, deleted.target_name) == ("ed", document.id, "Leave.pdf")
    assert not Document.objects.filter(id=document.id).exists()

    issued = api_key_create(name="librarian", collections=[handbook], can_manage_documents=True, actor=SYSTEM)
    api = Client(REMOTE_ADDR="192.0.2.9")
    by_key = _one("document_upload", lambda: api.post(
        "/api/v1/documents", {"collection": "handbook", "file": SimpleUploadedFile("Api.pdf", PDF)},
        headers=bearer(issued.secret),
    ))
    assert (by_key.actor_kind, by_key.actor_id, by_key.ip) == ("key", issued.key.id, "192.0.2.9")
    assert by_key.actor_name == f"{issued.key.prefix} (librarian)"
    api_document = Document.objects.get(original_name="Api.pdf")
    key_reindex = _one("document_reindex", lambda: api.post(
        f"/api/v1/documents/{api_document.id}/reindex", headers=bearer(issued.secret)
    ))
    key_delete = _one("document_delete", lambda: api.delete(
        f"/api/v1/documents/{api_document.id}", headers=bearer(issued.secret)
    ))
    assert {key_reindex.actor_id, key_delete.actor_id} == {issued.key.id} and key_delete.actor_kind == "key"


def test_a_deletion_is_logged_with_its_document_and_actor(handbook: Collection, caplog: pytest.LogCaptureFixture) -> None:
    from ingestion.services import document_delete

    document = _document(handbook)
    document_id = document.id  # Django clears the instance's id when the row goes
    with caplog.at_level(logging.INFO, logger="ingestion.services"):
        document_delete(document=document, actor=Actor.system("manage.py test"))
    line = next(r for r in caplog.records if r.getMessage() == "event=document_deleted")
    assert (line.document, line.collection, line.actor_kind) == (document_id, handbook.id, "system")  # type: ignore[attr-defined]
    record = AuditEvent.objects.get(action="document_delete")
    assert (record.target_id, record.target_name, record.actor_name) == (document_id, "Policy.pdf", "manage.py test")


def test_grants_are_recorded_by_the_members_page_and_the_command(handbook: Collection) -> None:
    _user("dana")
    staff = _user("root", is_staff=True)
    client = _signed_in(staff)
    added = _one("grant_add", lambda: client.post(
        "/documents/collections/handbook/members/add/", {"kind": "user", "name": "dana", "role": "reader"}
    ))
    assert (added.actor_name, added.target_name, added.details["role"]) == ("root", "user:dana", "reader")
    same = AuditEvent.objects.count()
    client.post("/documents/collections/handbook/members/add/", {"kind": "user", "name": "dana", "role": "reader"})
    assert AuditEvent.objects.count() == same  # granting what is already granted changes nothing
    changed = _one("grant_change", lambda: call_command(
        "collection_grant", "handbook", "--user", "dana", "--role", "editor", stdout=io.StringIO()
    ))
    assert (changed.actor_kind, changed.actor_name, changed.details["previous_role"]) == (
        "system", "manage.py collection_grant", "reader",
    )
    removed = _one("grant_remove", lambda: call_command(
        "collection_grant", "handbook", "--user", "dana", "--remove", stdout=io.StringIO()
    ))
    assert removed.target_name == "user:dana"


def test_api_keys_created_and_revoked_in_the_admin_and_the_command(handbook: Collection) -> None:
    staff = _user("root", is_staff=True, is_superuser=True)
    client = _signed_in(staff)
    created = _one("api_key_create", lambda: client.post(
        "/admin/api/apikey/add/",
        {"name": "helpdesk", "collections": [handbook.id], "rate_limit_per_minute": 60},
    ))
    key = ApiKey.objects.get(name="helpdesk")
    assert (created.actor_name, created.target_id, created.collection) == ("root", key.id, "handbook")
    assert key.key_hash not in str(created.details) and key.prefix in created.target_name
    revoked = _one("api_key_revoke", lambda: client.post(
        "/admin/api/apikey/", {"action": "revoke", "_selected_action": [key.id]}
    ))
    assert (revoked.actor_name, revoked.target_id) == ("root", key.id)
    by_command = _one("api_key_create", lambda: call_command(
        "create_api_key", "bot", "--collection", "handbook", stdout=io.StringIO(), stderr=io.StringIO()
    ))
    assert (by_command.actor_kind, by_command.actor_name) == ("system", "manage.py create_api_key")


def test_asks_record_the_answer_and_collection_and_the_question_only_when_configured(
    handbook: Collection, settings: Any
) -> None:
    reader = _user("rita")
    grant(handbook, user=reader)
    client = _signed_in(reader)
    asked = _one("ask", lambda: client.post("/ask/", {"collection": handbook.id, "question": "How many leave days?"}))
    answer = Answer.objects.get()
    assert (asked.actor_name, asked.target_type, asked.target_id, asked.collection) == ("rita", "answer", answer.id, "handbook")
    assert "question" not in asked.details and "leave" not in str(asked.details)

    settings.AUDIT_QUESTIONS = True
    issued = api_key_create(name="bot", collections=[handbook], actor=SYSTEM)
    by_key = _one("ask", lambda: post_json(
        client, "/api/v1/ask", {"question": "Who approves expenses?", "collection": "handbook", "stream": True},
        issued.secret,
    ))
    assert (by_key.actor_kind, by_key.actor_id) == ("key", issued.key.id)
    assert by_key.details["question"] == "Who approves expenses?" and by_key.details["source"] == "api"


def test_records_cannot_be_changed_or_deleted_through_the_admin_the_orm_or_sql() -> None:
    root = _user("root", is_staff=True, is_superuser=True)
    client = _signed_in(root)
    event = audit_record(action="ask", actor=Actor.system("test"), collection="handbook", details={"n": 1})
    listing = client.get("/admin/audit/auditevent/")
    assert listing.status_code == 200 and b"handbook" in listing.content
    change_url = f"/admin/audit/auditevent/{event.id}/change/"
    assert client.get(change_url).status_code == 200  # shown read-only
    assert b'name="_save"' not in client.get(change_url).content
    assert client.post(change_url, {"action": "sign_in", "collection": "x"}).status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.id}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    bulk = client.post("/admin/audit/auditevent/", {"action": "delete_selected", "_selected_action": [event.id]})
    assert bulk.status_code in (200, 302)

    event.collection = "x"
    with pytest.raises(AppendOnly):
        event.save()
    with pytest.raises(AppendOnly):
        event.delete()
    with pytest.raises(AppendOnly):
        AuditEvent.objects.filter(id=event.id).update(collection="x")
    with pytest.raises(AppendOnly):
        AuditEvent.objects.filter(id=event.id).delete()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET collection = 'x' WHERE id = %s", [event.id])
    fresh = AuditEvent.objects.get(id=event.id)
    assert (fresh.action, fresh.collection, fresh.details) == ("ask", "handbook", {"n": 1})


def test_the_staff_page_filters_and_exports_csv() -> None:
    staff = _user("root", is_staff=True)
    client = _signed_in(staff)
    old = timezone.now() - timedelta(days=40)
    audit_record(action="document_delete", actor=Actor.system("cron"), collection="handbook", target_name="=HYPERLINK(1)")
    audit_record(action="ask", actor=Actor(kind="user", id=5, name="dana", ip="192.0.2.1"), collection="handbook")
    audit_record(action="ask", actor=Actor(kind="user", id=6, name="erin"), collection="policies")
    AuditEvent.objects.create(at=old, action="ask", actor_kind="user", actor_name="dana", collection="handbook")

    page = client.get("/audit/", {"action": "ask", "actor": "dan"})
    assert page.status_code == 200
    rows = page.content.decode().count('data-action="ask"')
    assert rows == 2  # dana's two asks, not erin's
    recent = client.get("/audit/", {"action": "ask", "since": (timezone.now() - timedelta(days=1)).date().isoformat()})
    assert recent.content.decode().count('data-action="ask"') == 2  # dana's and erin's of today
    assert client.get("/audit/", {"since": "yesterday"}).status_code == 400

    export = client.get("/audit/export.csv", {"collection": "handbook"})
    assert export["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))  # type: ignore[attr-defined]
    assert table[0][:5] == ["time", "action", "actor_kind", "actor_id", "actor"]
    assert sorted((r[1], r[4]) for r in table[1:]) == [("ask", "dana"), ("ask", "dana"), ("document_delete", "cron")]
    assert "'=HYPERLINK(1)" in {r[9] for r in table[1:]}  # a spreadsheet must not run it as a formula
    assert _signed_in(_user("reader")).get("/audit/").status_code == 302


def test_retention_deletes_old_records_and_records_the_purge(settings: Any) -> None:
    settings.AUDIT_RETENTION_DAYS = 30
    now = timezone.now()
    AuditEvent.objects.create(at=now - timedelta(days=31), action="ask", actor_kind="system")
    kept = AuditEvent.objects.create(at=now - timedelta(days=29), action="ask", actor_kind="system")
    out = io.StringIO()
    purge = _one("audit_purge", lambda: call_command("audit_purge", stdout=out))
    assert "deleted=1" in out.getvalue() and purge.details["deleted"] == 1 and purge.actor_kind == "system"
    assert set(AuditEvent.objects.values_list("id", flat=True)) == {kept.id, purge.id}
    settings.AUDIT_RETENTION_DAYS = 0
    call_command("audit_purge", stdout=out)
    assert AuditEvent.objects.filter(id=kept.id).exists()


def test_deleting_a_user_or_a_collection_leaves_the_trail_alone(handbook: Collection) -> None:
    user = _user("leaver")
    client = _signed_in(user)
    user_id = user.id
    record = AuditEvent.objects.get(action="sign_in", actor_id=user_id)
    Conversation.objects.create(collection=handbook, user=user)
    client.post("/accounts/logout/")
    user.delete()
    handbook.delete()
    record.refresh_from_db()
    assert (record.actor_name, record.actor_id) == ("leaver", user_id)
    assert AuditEvent.objects.filter(action="sign_out", actor_name="leaver").count() == 1
