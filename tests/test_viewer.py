"""The citation viewer and what it stands on: locating a passage on its page (text layer and OCR lines), page
images (rendered, cached, bounded), the original file, and the same access rules as the collection for the
browser and the API. No worker: documents are stored and, where chunks matter, ingested in this process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from api.keys import api_key_create
from api.models import KeyConversation
from chat.models import Answer, Conversation, PassageRecord
from ingestion.locate import PageBox, lines_boxes, passage_locate, pdf_passage_boxes, spans_match
from ingestion.models import Collection, Document, OcrPage
from ingestion.pages import page_cache_trim, page_image
from ingestion.parsers.base import TextLine
from ingestion.parsers.pdf import pdf_parse
from ingestion.services import document_delete, document_ingest, document_upload
from tests import pdf_factory
from tests.conftest import HANDBOOK
from tests.grants import SYSTEM, grant

pytestmark = pytest.mark.django_db

PASSWORD = "pw-viewer-123456"
LEAVE = "Every full-time employee receives 27 days of paid annual leave per calendar year."
# Where make_text_pdf draws the first line of a Letter page (612 x 792 pt): one-inch margins (72 pt), 12 pt
# Helvetica on a baseline 72 pt from the top, so its letters reach about 12 pt above it and 4 below.
FIRST_LINE = (72 / 612, (72 - 12) / 792, 540 / 612, (72 + 4) / 792)
PNG = b"\x89PNG\r\n\x1a\n"


def overlap(box: PageBox | tuple[float, float, float, float], area: tuple[float, float, float, float]) -> float:
    """Share of `box` inside `area` (both x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (box.x0, box.y0, box.x1, box.y1) if isinstance(box, PageBox) else box
    inside = max(0.0, min(x1, area[2]) - max(x0, area[0])) * max(0.0, min(y1, area[3]) - max(y0, area[1]))
    return inside / max((x1 - x0) * (y1 - y0), 1e-9)


def _stored(collection: Collection, path: Path, name: str, **fields: Any) -> Document:
    """A document whose file is stored, as after upload (nothing is queued: the test's transaction never commits)."""
    document = document_upload(collection=collection, upload=SimpleUploadedFile(name, path.read_bytes()), actor=SYSTEM).document
    Document.objects.filter(id=document.id).update(**{"status": Document.Status.READY, "page_count": 3, **fields})
    document.refresh_from_db()
    return document


@pytest.fixture
def handbook(tmp_path: Path) -> Document:
    collection = Collection.objects.create(name="Handbook", slug="handbook")
    return _stored(collection, pdf_factory.make_text_pdf(tmp_path / "hb.pdf", HANDBOOK), "Employee Handbook.pdf")


def _member(collection: Collection, name: str = "erin") -> Client:
    user = get_user_model().objects.create_user(name, password=PASSWORD)
    grant(collection, user=user)
    client = Client()
    client.force_login(user)
    return client


def _answer(document: Document, user: User | None, **record: Any) -> Answer:
    fields: dict[str, Any] = {
        "n": 1, "chunk_id": 999, "document_id": document.id, "document_name": document.original_name,
        "page_start": 2, "page_end": 2, "score": 0.7, "text": LEAVE,
    }
    fields.update(record)
    conversation = Conversation.objects.create(collection=document.collection, user=user, title="leave")
    return Answer.objects.create(
        conversation=conversation, question="How many days of paid leave?", status="done", model_called=True,
        text="27 days [1].", passages=[PassageRecord(**fields).to_json()], citations=[1],
    )


def _read(response: Any) -> bytes:
    if not response.streaming:
        return bytes(response.content)

    async def read() -> bytes:
        return b"".join([part async for part in response.streaming_content])

    return async_to_sync(read)()


# --- where a passage sits ---------------------------------------------------------------------------------


def test_spans_match_ignores_layout_and_finds_a_cleaned_passage_piecewise() -> None:
    page = "Intro.\r\nThe employ-\r\nee gets the ﬁnal say on\r\nleave; see page 4."
    ((start, end),) = spans_match(page_text=page, passage="The employee gets the final say")
    assert page[start:end] == "The employ-\r\nee gets the ﬁnal say"
    long_page = "Header. " + "Alpha beta gamma delta epsilon zeta eta theta iota kappa. " * 4 + "Footer."
    cleaned = long_page[8:-7].replace("gamma", "[INST] gamma")  # a prompt that altered the passage
    spans = spans_match(page_text=long_page, passage=cleaned)
    assert spans and spans[0][0] <= 8 + 24 and spans[-1][1] >= len(long_page) - 7 - 60
    assert spans_match(page_text=long_page, passage="Nothing of this appears on that page at all, anywhere.") == []


def test_a_passage_is_located_where_the_text_layer_draws_it(tmp_path: Path) -> None:
    path = pdf_factory.make_text_pdf(tmp_path / "hb.pdf", HANDBOOK)
    boxes = pdf_passage_boxes(path=path, pages=[2], passage=LEAVE)
    assert boxes and {b.page for b in boxes} == {2}
    assert all(overlap(b, FIRST_LINE) > 0.8 for b in boxes), boxes
    whole = pdf_passage_boxes(path=path, pages=[2], passage=pdf_parse(path=path, ocr=False).units[1].text)
    assert len(whole) == 2 and whole[1].y0 > whole[0].y1 - 0.002  # the second line, under the first
    assert pdf_passage_boxes(path=path, pages=[3], passage=LEAVE) == ()  # not on that page


def test_ocr_lines_give_boxes_cut_at_the_passage() -> None:
    lines = [TextLine(0.1, 0.2, 0.9, 0.25, "The meal allowance is"), TextLine(0.1, 0.3, 0.5, 0.35, "450 kroner a day.")]
    boxes = lines_boxes(page=4, lines=lines, passage="allowance is 450 kroner")
    assert [b.page for b in boxes] == [4, 4]
    first, second = boxes
    assert first.x0 == pytest.approx(0.1 + 0.8 * 9 / 21) and first.x1 == pytest.approx(0.9)
    assert (second.x0, second.y0, second.y1) == (0.1, 0.3, 0.35) and second.x1 < 0.5


@pytest.mark.slow
def test_a_scanned_page_keeps_its_ocr_lines_and_the_passage_is_found_on_them(tmp_path: Path) -> None:
    collection = Collection.objects.create(name="Scans")
    image = pdf_factory.text_image(["Scanned memo", "Meal allowance 450 kroner"])  # 1200 x 600 px, lines at 56 and 145 px
    document = _stored(collection, pdf_factory.make_image_pdf(tmp_path / "scan.pdf", [image]), "scan.pdf",
                       status=Document.Status.QUEUED)
    document = document_ingest(document_id=document.id)
    assert document.status == Document.Status.READY
    (ocr_page,) = OcrPage.objects.filter(document=document)
    assert ocr_page.number == 1 and [line[4] for line in ocr_page.lines] == ["Scanned memo", "Meal allowance 450 kroner"]
    where = passage_locate(document=document, page_start=1, page_end=1, text="Meal allowance 450 kroner")
    assert where.media_type == "application/pdf" and len(where.boxes) == 1
    assert overlap(where.boxes[0], (0.03, 145 / 600 - 0.03, 0.95, (145 + 70) / 600)) > 0.8, where.boxes
    document_ingest(document_id=document.id)  # again: the lines are replaced, not added
    assert OcrPage.objects.filter(document=document).count() == 1


# --- page images and the file -------------------------------------------------------------------------------


def test_page_images_are_rendered_once_then_cached_and_the_cache_is_bounded(handbook: Document, settings: Any) -> None:
    first = page_image(document=handbook, number=2)
    assert first.startswith(PNG)
    cached = list((Path(settings.DATA_DIR) / "page-cache" / str(handbook.id)).glob("*-p2-w*.png"))
    assert len(cached) == 1 and cached[0].read_bytes() == first
    cached[0].write_bytes(PNG + b"from the cache")
    assert page_image(document=handbook, number=2) == PNG + b"from the cache"
    settings.PAGE_CACHE_BYTES = len(first) + 10  # room for one page: older pages go first
    page_image(document=handbook, number=1)
    page_image(document=handbook, number=3)
    assert [p.name.split("-")[1] for p in (Path(settings.DATA_DIR) / "page-cache" / str(handbook.id)).glob("*.png")] == ["p3"]
    page_cache_trim(limit=0)


def test_members_get_pages_and_the_file_and_everyone_else_the_same_404(handbook: Document, tmp_path: Path) -> None:
    member = _member(handbook.collection)
    page = member.get(f"/documents/{handbook.id}/pages/2.png")
    assert page.status_code == 200 and page["Content-Type"] == "image/png" and page.content.startswith(PNG)
    download = member.get(f"/documents/{handbook.id}/file/")
    assert download.status_code == 200 and download["Content-Type"] == "application/pdf"
    assert download["Content-Disposition"] == 'attachment; filename="Employee Handbook.pdf"'
    assert _read(download) == Path(handbook.file.path).read_bytes()

    other = Collection.objects.create(name="Other")
    outsider = _member(other, "mallory")
    missing = Document.objects.order_by("-id").first().id + 100  # type: ignore[union-attr]
    for path in (f"/documents/{handbook.id}/pages/2.png", f"/documents/{handbook.id}/file/"):
        refused, absent = outsider.get(path), outsider.get(path.replace(str(handbook.id), str(missing)))
        assert refused.status_code == absent.status_code == 404
        assert refused.content.replace(str(handbook.id).encode(), b"") == absent.content.replace(str(missing).encode(), b"")
        assert Client().get(path).status_code == 302  # signed out: to the login page


def test_api_pages_and_file_follow_the_keys_collections(handbook: Document) -> None:
    client = Client()
    mine = api_key_create(name="bot", collections=[handbook.collection], actor=SYSTEM).secret
    theirs = api_key_create(name="other", collections=[Collection.objects.create(name="Other")], actor=SYSTEM).secret
    page = client.get(f"/api/v1/documents/{handbook.id}/pages/2", headers={"Authorization": f"Bearer {mine}"})
    assert page.status_code == 200 and page["Content-Type"] == "image/png" and page.content.startswith(PNG)
    file = client.get(f"/api/v1/documents/{handbook.id}/file", headers={"Authorization": f"Bearer {mine}"})
    assert file.status_code == 200 and _read(file) == Path(handbook.file.path).read_bytes()
    for path in (f"/api/v1/documents/{handbook.id}/pages/2", f"/api/v1/documents/{handbook.id}/file"):
        refused = client.get(path, headers={"Authorization": f"Bearer {theirs}"})
        absent = client.get(path.replace(f"/{handbook.id}/", "/987654/"), headers={"Authorization": f"Bearer {theirs}"})
        assert refused.status_code == absent.status_code == 404
        assert refused.json()["error"]["code"] == absent.json()["error"]["code"] == "not_found"
        assert client.get(path).status_code == 401
    schema = client.get("/api/v1/openapi.json").json()
    pages = schema["paths"]["/api/v1/documents/{document_id}/pages/{number}"]["get"]["responses"]
    assert "image/png" in pages["200"]["content"] and {"404", "409"} <= set(pages)
    citation = schema["components"]["schemas"]["CitationOut"]["properties"]
    assert {"highlights", "document_deleted", "message", "file_url", "page_image_url"} <= set(citation)


def test_bad_pages_and_documents_without_pages_get_clear_errors(handbook: Document, tmp_path: Path) -> None:
    key = api_key_create(name="bot", collections=[handbook.collection], actor=SYSTEM).secret
    api, member = Client(), _member(handbook.collection)

    def error(path: str) -> tuple[int, str, str]:
        response = api.get(path, headers={"Authorization": f"Bearer {key}"})
        return response.status_code, response.json()["error"]["code"], response.json()["error"]["message"]

    assert error(f"/api/v1/documents/{handbook.id}/pages/9") == (
        404, "page_not_found", "Employee Handbook.pdf has pages 1 to 3, not page 9"
    )
    assert api.get(f"/api/v1/documents/{handbook.id}/pages/0", headers={"Authorization": f"Bearer {key}"}).status_code == 422
    failed = _stored(handbook.collection, pdf_factory.make_text_pdf(tmp_path / "f.pdf", ["x"]), "broken.pdf",
                     status=Document.Status.FAILED, error="PDF is damaged")
    assert error(f"/api/v1/documents/{failed.id}/pages/1")[:2] == (409, "page_unavailable")
    word = _stored(handbook.collection, pdf_factory.make_docx_named_pdf(tmp_path / "w.docx"), "Policy.docx")
    code, name, message = error(f"/api/v1/documents/{word.id}/pages/1")
    assert (code, name) == (409, "page_unavailable") and "no page images" in message and "download" in message
    assert member.get(f"/documents/{word.id}/file/").status_code == 200  # its file still downloads
    never_stored = Document.objects.create(
        collection=handbook.collection, original_name="big.pdf", sha256="f" * 64, size=10**10, status="failed",
        error="File is over the limit",
    )
    assert error(f"/api/v1/documents/{never_stored.id}/file")[:2] == (409, "file_unavailable")
    assert member.get(f"/documents/{never_stored.id}/pages/1.png").status_code == 409


# --- the viewer ---------------------------------------------------------------------------------------------


def test_the_viewer_shows_the_cited_page_with_the_snapshot_highlight(handbook: Document) -> None:
    member = _member(handbook.collection)
    user = get_user_model().objects.get(username="erin")
    box = PageBox(2, 0.12, 0.08, 0.82, 0.094)
    answer = _answer(handbook, user, boxes=(box,))
    page = member.get(f"/answers/{answer.id}/sources/1/")
    html = page.content.decode()
    assert page.status_code == 200 and f"/documents/{handbook.id}/pages/2.png" in html
    assert 'class="highlight" style="left: 12.000%; top: 8.000%; width: 70.000%; height: 1.400%"' in html
    assert f'href="/documents/{handbook.id}/file/"' in html and "Page 2 of 3" in html and LEAVE in html
    assert "?page=1" in html and "?page=3" in html
    next_page = member.get(f"/answers/{answer.id}/sources/1/?page=3").content.decode()
    assert "/pages/3.png" in next_page and 'class="highlight"' not in next_page and "The passage is on page 2" in next_page
    assert member.get(f"/answers/{answer.id}/sources/1/?page=4").status_code == 400
    assert member.get(f"/answers/{answer.id}/sources/2/").status_code == 404
    outsider = _member(Collection.objects.create(name="Other"), "mallory")
    assert outsider.get(f"/answers/{answer.id}/sources/1/").status_code == 404
    # The chat's citations open the viewer.
    sources = member.get(f"/answers/{answer.id}/").json()["sources"]
    assert sources[0]["url"] == f"/answers/{answer.id}/sources/1/" and sources[0]["boxes"] == [box.to_json()]


def test_an_old_answer_without_boxes_is_located_when_viewed(handbook: Document) -> None:
    member = _member(handbook.collection)
    answer = _answer(handbook, get_user_model().objects.get(username="erin"))
    answer.passages = [{k: v for k, v in p.items() if k not in ("boxes", "media_type")} for p in answer.passages]
    answer.save()
    html = member.get(f"/answers/{answer.id}/sources/1/").content.decode()
    assert html.count('class="highlight"') == 1 and "/pages/2.png" in html


def test_a_document_without_pages_shows_its_text_and_download(handbook: Document, tmp_path: Path) -> None:
    word = _stored(handbook.collection, pdf_factory.make_docx_named_pdf(tmp_path / "w.docx"), "Policy.docx")
    member = _member(handbook.collection)
    answer = _answer(word, get_user_model().objects.get(username="erin"), media_type=
                     "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    html = member.get(f"/answers/{answer.id}/sources/1/").content.decode()
    assert "no page images" in html and "<img" not in html and LEAVE in html
    assert f'href="/documents/{word.id}/file/"' in html


def test_a_deleted_document_leaves_its_citations_readable_and_says_so(handbook: Document) -> None:
    member = _member(handbook.collection)
    user = get_user_model().objects.get(username="erin")
    answer = _answer(handbook, user, boxes=(PageBox(2, 0.1, 0.1, 0.8, 0.12),))
    key = api_key_create(name="bot", collections=[handbook.collection], actor=SYSTEM)
    KeyConversation.objects.create(conversation=answer.conversation, key=key.key)
    document_delete(document=handbook, actor=SYSTEM)
    page = member.get(f"/answers/{answer.id}/sources/1/")
    html = page.content.decode()
    assert page.status_code == 200 and "was deleted" in html and LEAVE in html and "<img" not in html
    assert "/file/" not in html
    citation = Client().get(f"/api/v1/answers/{answer.id}", headers={"Authorization": f"Bearer {key.secret}"}).json()["citations"][0]
    assert citation["document_deleted"] is True and "deleted" in citation["message"] and citation["text"] == LEAVE
    assert citation["file_url"] is None and citation["page_image_url"] is None
    assert citation["highlights"] == [{"page": 2, "x0": 0.1, "y0": 0.1, "x1": 0.8, "y1": 0.12}]
    assert member.get(f"/answers/{answer.id}/").json()["sources"][0]["document_deleted"] is True
