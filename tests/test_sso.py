"""Single sign-on against a real OpenID Connect provider: django-oidc-provider in its own process
(tests/idp), GroundRAG under uvicorn, a real browser between them. The provider's group claim becomes
Django groups at each sign-in, and groups hold collection grants: a group removed in the provider is
access gone at the next sign-in. With RAG_PASSWORD_LOGIN=0 no password signs anyone in.

The first tests run in-process (the user sync, the settings switch, a refused callback); the last ones
start the provider and the server.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from accounts.models import SsoIdentity
from accounts.services import sso_user_sync
from audit.models import AuditEvent
from chat.models import Answer, Conversation
from ingestion.access import collections_readable
from ingestion.models import Chunk, Collection, Document
from ragsite.components import components_reset
from tests.conftest import ROOT, asgi_server_running, process_serving, worker_env
from tests.grants import grant
from tests.llm_fixtures import free_port

ISSUER = "https://idp.example.com/realms/acme"
SECRET_TEXT = "Nightjar handbook: 27 days of paid leave"
IDP_PASSWORD = "pw-alice-at-the-idp"


def _claims(sub: str = "u-1", **extra: Any) -> dict[str, Any]:
    return {"sub": sub, "preferred_username": "alice", "email": "alice@example.com", "given_name": "Alice", **extra}


@pytest.mark.django_db
def test_the_group_claim_is_mirrored_into_django_groups_at_each_sign_in(settings: Any) -> None:
    settings.OIDC_GROUPS_CLAIM = "groups"
    User.objects.create_user("alice")  # a local account of the same name is someone else
    Group.objects.create(name="local-only")
    user = sso_user_sync(claims=_claims(groups=["sales", "handbook-readers"]), issuer=ISSUER, ip="192.0.2.1")
    assert user.username == "alice-2" and user.email == "alice@example.com" and not user.has_usable_password()
    assert set(user.groups.values_list("name", flat=True)) == {"sales", "handbook-readers"}
    synced = AuditEvent.objects.get(action="groups_synced")
    assert (synced.actor_name, synced.details["added"], synced.ip) == ("alice-2", "handbook-readers,sales", "192.0.2.1")

    again = sso_user_sync(claims=_claims(groups=["sales"]), issuer=ISSUER, ip=None)
    assert again.id == user.id and list(again.groups.values_list("name", flat=True)) == ["sales"]
    assert AuditEvent.objects.filter(action="groups_synced").latest("id").details["removed"] == "handbook-readers"
    sso_user_sync(claims=_claims(groups=["sales"]), issuer=ISSUER, ip=None)
    assert AuditEvent.objects.filter(action="groups_synced").count() == 2  # nothing changed, nothing recorded
    assert SsoIdentity.objects.get(user=user).groups == ["sales"]

    gone = sso_user_sync(claims=_claims(), issuer=ISSUER, ip=None)  # no claim: no group
    assert not gone.groups.exists()
    other = sso_user_sync(claims=_claims(sub="u-2"), issuer=ISSUER, ip=None)
    assert other.id != user.id  # the subject, not the name, is the identity


@pytest.mark.django_db
def test_staff_follow_the_staff_groups_and_nested_claims_are_read(settings: Any) -> None:
    settings.OIDC_GROUPS_CLAIM = "realm_access.roles"
    settings.OIDC_STAFF_GROUPS = ["rag-admins"]
    admin = sso_user_sync(claims=_claims(realm_access={"roles": ["rag-admins"]}), issuer=ISSUER, ip=None)
    assert admin.is_staff and admin.is_superuser
    demoted = sso_user_sync(claims=_claims(realm_access={"roles": []}), issuer=ISSUER, ip=None)
    assert not demoted.is_staff and not demoted.is_superuser
    assert AuditEvent.objects.filter(action="groups_synced").latest("id").details["staff"] is False


@pytest.fixture
def sso_settings(settings: Any) -> Iterator[Any]:
    settings.OIDC_ISSUER = "http://127.0.0.1:9/openid"  # nothing listens: nothing here may need it
    settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET = "groundrag", "s3cret"
    settings.PASSWORD_LOGIN = False
    settings.AUTHENTICATION_BACKENDS = ["accounts.backends.SsoBackend"]
    components_reset()
    yield settings
    components_reset()


@pytest.mark.django_db
def test_password_sign_in_is_off_when_configured(sso_settings: Any) -> None:
    User.objects.create_superuser("root", password="pw-root-123456")
    client = Client()
    page = client.get("/accounts/login/").content.decode()
    assert 'id="sso-sign-in"' in page and 'id="password-sign-in"' not in page
    refused = client.post("/accounts/login/", {"username": "root", "password": "pw-root-123456"})
    assert refused.status_code == 403 and b"Password sign-in is turned off" in refused.content
    assert not client.login(username="root", password="pw-root-123456")  # no backend takes a password
    admin_login = client.get("/admin/login/?next=/admin/")
    assert admin_login.status_code == 302 and admin_login["Location"] == "/accounts/login/?next=/admin/"
    assert client.get("/").status_code == 302 and "_auth_user_id" not in client.session
    assert not AuditEvent.objects.filter(action="sign_in").exists()


@pytest.mark.django_db
def test_a_refused_sso_callback_is_recorded_and_shown(sso_settings: Any) -> None:
    client = Client(REMOTE_ADDR="198.51.100.8")
    response = client.get("/accounts/sso/callback/", {"error": "access_denied", "state": "x"}, follow=True)
    assert b"Single sign-on failed" in response.content and b"access_denied" in response.content
    failed = AuditEvent.objects.get(action="sign_in_failed")
    assert (failed.ip, failed.details["method"]) == ("198.51.100.8", "sso") and "access_denied" in failed.details["reason"]
    assert "_auth_user_id" not in client.session


# The real provider and the browser.


@dataclass
class Provider:
    url: str
    env: dict[str, str]

    @property
    def issuer(self) -> str:
        return f"{self.url}/openid"

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "django", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def identity_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    """django-oidc-provider serving on a free port of `localhost` (GroundRAG is on 127.0.0.1: two hosts,
    two cookie jars, as in production), with its own SQLite database and RSA key."""
    folder = tmp_path_factory.mktemp("idp")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_", "RAG_", "DATABASE_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.idp.settings", IDP_URL=f"http://localhost:{port}", IDP_DB=str(folder / "idp.sqlite3"),
        PYTHONUNBUFFERED="1",
    )
    provider = Provider(url=f"http://localhost:{port}", env=env)
    provider.manage("migrate", "--verbosity", "0")
    provider.manage("creatersakey")
    cmd = [sys.executable, "-m", "django", "runserver", "--noreload", f"localhost:{port}"]
    ready = f"{provider.issuer}/.well-known/openid-configuration"
    with process_serving(cmd, env=env, log=folder / "idp.log", ready_url=ready, what="the identity provider"):
        yield provider


@pytest.fixture(scope="module")
def sso_server(
    identity_provider: Provider, data_dir: Path, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """GroundRAG under uvicorn, signing in only through the provider (RAG_PASSWORD_LOGIN=0)."""
    client_secret = secrets.token_urlsafe(24)
    with django_db_blocker.unblock():
        env = worker_env(
            data_dir, RAG_OIDC_ISSUER=identity_provider.issuer, RAG_OIDC_CLIENT_ID="groundrag",
            RAG_OIDC_CLIENT_SECRET=client_secret, RAG_OIDC_SCOPES="openid email profile groups",
            RAG_OIDC_PROVIDER_NAME="Test IdP", RAG_PASSWORD_LOGIN="0",
        )
    with asgi_server_running(env, tmp_path_factory.mktemp("sso-uvicorn") / "uvicorn.log") as url:
        identity_provider.manage(
            "idp_client", "groundrag", "--secret", client_secret, "--redirect-uri", f"{url}/accounts/sso/callback/"
        )
        yield url


def _passage(collection: Collection) -> Chunk:
    document = Document.objects.create(
        collection=collection, original_name="Handbook.pdf", sha256=secrets.token_hex(32), size=10, status="ready"
    )
    return Chunk.objects.create(
        document=document, ordinal=0, text=SECRET_TEXT, page_start=2, page_end=2, token_count=8, embedding=b"\0" * 16
    )


def _sign_in_through_the_provider(page: Any, base: str, provider: Provider, *, expect_login_form: bool) -> None:
    page.goto(f"{base}/")
    assert "/accounts/login/" in page.url and page.locator("#password-sign-in").count() == 0
    page.click("#sso-sign-in")
    if expect_login_form:
        page.wait_for_selector("#idp-login")
        assert page.url.startswith(provider.url), page.url
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", IDP_PASSWORD)
        page.click("#idp-login button[type=submit]")
    page.wait_for_url(f"{base}/", timeout=30_000)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sign_in_through_the_provider_and_lose_access_when_the_group_is_removed_there(
    identity_provider: Provider, sso_server: str, browser_page: Any
) -> None:
    """Fails if a sign-in through the provider does not map its groups to grants, or if a group removed in
    the provider keeps its access after the next sign-in."""
    page, base = browser_page, sso_server
    handbook = Collection.objects.create(name="Nightjar Handbook", slug="nightjar")
    passage = _passage(handbook)
    grant(handbook, group=Group.objects.create(name="handbook-readers"))
    identity_provider.manage("idp_user", "alice", "--password", IDP_PASSWORD, "--groups", "handbook-readers,lunch-club")

    _sign_in_through_the_provider(page, base, identity_provider, expect_login_form=True)
    assert "Sign out alice" in page.inner_text("header")
    assert "Nightjar Handbook" in page.inner_text("#collection")
    alice = User.objects.get(username="alice")
    assert set(alice.groups.values_list("name", flat=True)) == {"handbook-readers", "lunch-club"}
    conversation = Conversation.objects.create(collection=handbook, user=alice, title="Leave")
    Answer.objects.create(conversation=conversation, question="Leave?", text=SECRET_TEXT, status="done")
    page.goto(f"{base}/passages/{passage.id}/")
    assert SECRET_TEXT in page.inner_text("#passage-text")
    page.goto(f"{base}/c/{conversation.id}/")
    assert SECRET_TEXT in page.inner_text("#answers")

    identity_provider.manage("idp_user", "alice", "--groups", "lunch-club")  # an administrator, in the provider
    page.click("header button:has-text('Sign out')")
    page.wait_for_url(f"{base}/accounts/login/")
    # The provider's own session is still open: it sends alice straight back, with her groups as they are now.
    _sign_in_through_the_provider(page, base, identity_provider, expect_login_form=False)
    assert "Sign out alice" in page.inner_text("header")
    assert "Nightjar Handbook" not in page.content()
    assert list(alice.groups.values_list("name", flat=True)) == ["lunch-club"]
    assert not collections_readable(user=alice).exists()
    for path in (f"/c/{conversation.id}/", f"/passages/{passage.id}/"):
        response = page.goto(f"{base}{path}")
        assert response.status == 404 and SECRET_TEXT not in page.content(), path

    records = AuditEvent.objects.filter(actor_id=alice.id).order_by("id")
    assert [r.action for r in records if r.action != "ask"] == [
        "groups_synced", "sign_in", "sign_out", "groups_synced", "sign_in",
    ]
    assert {r.details.get("method") for r in records if r.action == "sign_in"} == {"sso"}
    assert records.filter(action="groups_synced").last().details["removed"] == "handbook-readers"  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_server_refuses_passwords_when_password_sign_in_is_off(sso_server: str) -> None:
    User.objects.create_superuser("root", password="pw-root-123456")
    # The page renders no password form, hence no CSRF token: a client forging one gets past CSRF (a cookie
    # and a field that match), so what refuses it is the setting.
    token = secrets.token_hex(16)
    with httpx.Client(base_url=sso_server, follow_redirects=False, cookies={"csrftoken": token}) as http:
        form = http.get("/accounts/login/")
        refused = http.post(
            "/accounts/login/", data={"username": "root", "password": "pw-root-123456", "csrfmiddlewaretoken": token},
            headers={"Referer": f"{sso_server}/accounts/login/"},
        )
        assert form.status_code == 200 and 'id="password-sign-in"' not in form.text
        assert refused.status_code == 403 and "Password sign-in is turned off" in refused.text, refused.text
        assert "sessionid" not in refused.cookies
        assert http.get("/admin/login/").headers["location"].startswith("/accounts/login/")
        assert http.get("/admin/").status_code == 302
