"""The pages in a real browser (Debian's chromium through Playwright) against the real ASGI server and worker."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from ingestion.models import Collection, Document
from ingestion.services import document_upload
from tests import doc_factory
from tests.conftest import HANDBOOK, WorkerProcess, asgi_server_running, wait_for, worker_env
from tests.grants import SYSTEM, grant
from tests.pdf_factory import make_text_pdf

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCRIPT_TEXT = "<script>window.__pwned = 1</script>"
# File names cannot hold "/", so the hostile name uses an event handler instead of a script element.
HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">.pdf'
PASSWORD = "pw-browser-123456"


@pytest.fixture(scope="module")
def asgi_server(
    celery_worker_process: WorkerProcess, data_dir: Path, django_db_blocker: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        env = worker_env(data_dir)
    with asgi_server_running(env, tmp_path_factory.mktemp("uvicorn") / "uvicorn.log") as url:
        yield url


def _login(page: object, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")  # type: ignore[attr-defined]
    page.fill("input[name=username]", username)  # type: ignore[attr-defined]
    page.fill("input[name=password]", PASSWORD)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_load_state()  # type: ignore[attr-defined]
    assert "/accounts/login" not in page.url, page.inner_text("main")  # type: ignore[attr-defined]


def test_ask_in_the_browser_streams_and_citation_opens_the_page(
    asgi_server: str, browser_page: object, tmp_path: Path
) -> None:
    page = browser_page
    collection = Collection.objects.create(name="Fleet")
    user = get_user_model().objects.create_user("dana", password=PASSWORD)
    grant(collection, user=user)
    pdf = make_text_pdf(
        tmp_path / "fleet.pdf",
        [
            "Fleet overview. The company operates forty delivery vans in three cities.",
            "The Otter R2 battery lasts about 10 hours of typical operation. A full charge takes 90 minutes.",
            f"Appendix. Raw markup from a web page follows: {SCRIPT_TEXT} End of appendix.",
        ],
    )
    document_upload(
        collection=collection,
        upload=SimpleUploadedFile(f"Fleet {HOSTILE_NAME}", pdf.read_bytes()),
        actor=SYSTEM,
    )
    wait_for(
        lambda: Document.objects.filter(status="ready").exists(), timeout=180, what="the PDF to be ready"
    )

    _login(page, asgi_server, "dana")
    page.fill("#question", "How long does the Otter R2 battery last?")  # type: ignore[attr-defined]
    page.click("#ask-button")  # type: ignore[attr-defined]
    body = page.locator(".qa .answer-body").last  # type: ignore[attr-defined]
    # The answer streams into its card (the default extractive backend sends the battery sentence, cited, in
    # well under a second: test_api_integration follows SmolLM2's tokens arriving one by one).
    page.wait_for_selector(".qa .answer:not(.streaming)", timeout=120_000)  # type: ignore[attr-defined]
    assert "about 10 hours of typical operation" in body.inner_text(), body.inner_text()
    assert body.locator("a.cite").count() >= 1
    page.wait_for_selector(".qa .grounding.grounded, .qa .grounding.flagged", timeout=120_000)  # type: ignore[attr-defined]

    # The sources list names each passage's document and page; the battery passage is on page 2.
    sources = page.locator(".qa .citations a")  # type: ignore[attr-defined]
    assert sources.count() >= 1
    assert "p. 2" in sources.first.inner_text()
    link = sources.first
    link.click()
    page.wait_for_selector("#passage-text")  # type: ignore[attr-defined]
    assert "Page 2" in page.inner_text("main")  # type: ignore[attr-defined]
    assert "90 minutes" in " ".join(page.inner_text("#passage-text").split())  # type: ignore[attr-defined]
    assert page.evaluate("window.__pwned") is None  # type: ignore[attr-defined]


def test_script_in_documents_and_names_shows_as_text(
    asgi_server: str, browser_page: object, tmp_path: Path
) -> None:
    page = browser_page
    collection = Collection.objects.create(name="Markup")
    get_user_model().objects.create_user("root2", password=PASSWORD, is_staff=True)
    pdf = make_text_pdf(
        tmp_path / "markup.pdf", [f"Raw markup from a web page follows: {SCRIPT_TEXT} and more text."]
    )
    document = document_upload(
        collection=collection, upload=SimpleUploadedFile(HOSTILE_NAME, pdf.read_bytes()), actor=SYSTEM
    ).document
    wait_for(
        lambda: Document.objects.filter(id=document.id, status="ready").exists(), timeout=180, what="ready"
    )
    chunk = document.chunks.first()
    assert chunk is not None

    _login(page, asgi_server, "root2")
    page.goto(f"{asgi_server}/documents/?collection={collection.slug}")  # type: ignore[attr-defined]
    assert HOSTILE_NAME in page.inner_text("table.documents")  # type: ignore[attr-defined]
    assert page.evaluate("window.__pwned") is None  # type: ignore[attr-defined]
    page.goto(f"{asgi_server}/passages/{chunk.id}/")  # type: ignore[attr-defined]
    assert "window.__pwned" in page.inner_text("#passage-text")  # type: ignore[attr-defined]
    assert page.evaluate("window.__pwned") is None  # type: ignore[attr-defined]


def test_staff_uploads_a_pdf_a_word_file_and_a_web_page_and_watches_them_become_ready(
    asgi_server: str, browser_page: object, tmp_path: Path
) -> None:
    page = browser_page
    collection = Collection.objects.create(name="Uploads")
    get_user_model().objects.create_user("stan", password=PASSWORD, is_staff=True)
    prose = "Quarterly numbers follow in prose. " * 40
    files = [
        str(make_text_pdf(tmp_path / "memo.pdf", [f"Memo. {prose}"] * 3)),
        str(doc_factory.make_docx(
            tmp_path / "handbook.docx", [("Leave", [f"Employees receive 27 days of leave. {prose}"]), ("Travel", [prose])],
            table=("Meal allowances", doc_factory.ALLOWANCE_HEADERS, doc_factory.ALLOWANCE_ROWS),
        )),
        str(doc_factory.make_html(tmp_path / "policy.html", f"<h1>Badges</h1><p>Wear the badge. {prose}</p>")),
    ]
    (tmp_path / "notes.docx").write_bytes(os.urandom(2048))  # binary data renamed .docx
    files.append(str(tmp_path / "notes.docx"))

    _login(page, asgi_server, "stan")
    page.goto(f"{asgi_server}/documents/?collection={collection.slug}")  # type: ignore[attr-defined]
    accept = page.get_attribute("input[name=files]", "accept")  # type: ignore[attr-defined]
    assert all(kind in accept for kind in (".pdf", ".docx", ".html", ".md", ".txt"))
    page.set_input_files("input[name=files]", files)  # type: ignore[attr-defined]
    page.click("#upload-form button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_selector("tr[data-id]", timeout=30_000)  # type: ignore[attr-defined]
    assert page.locator("tr[data-id]").count() == 4  # type: ignore[attr-defined]
    # Each row has a progress bar that the page updates until every document is finished.
    assert page.locator("tr[data-id] .bar[role=progressbar]").count() == 4  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "() => document.querySelectorAll('tr[data-status=ready]').length === 3"
        " && document.querySelectorAll('tr[data-status=failed]').length === 1",
        timeout=240_000,
    )
    bars = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "tr[data-status=ready] .bar", "els => els.map(e => e.getAttribute('aria-valuenow'))"
    )
    assert bars == ["100"] * 3
    rows = {page.inner_text(f"tr[data-id='{d.id}'] .name"): page.inner_text(f"tr[data-id='{d.id}'] .pages")  # type: ignore[attr-defined]
            for d in Document.objects.filter(collection=collection)}
    assert rows["memo.pdf"] == "3" and rows["handbook.docx"] == "2 sections" and rows["policy.html"] == "1 section"
    failed = page.inner_text("tr[data-status=failed]")  # type: ignore[attr-defined]
    assert "binary data of an unknown kind, which cannot be read: upload one of PDF" in failed
    page.screenshot(path=str(tmp_path / "documents-upload-formats.png"), full_page=True)  # type: ignore[attr-defined]


def test_model_output_with_markup_is_shown_as_text(asgi_server: str, browser_page: object) -> None:
    from chat.models import Answer, Conversation

    page = browser_page
    collection = Collection.objects.create(name="Output")
    user = get_user_model().objects.create_user("olga", password=PASSWORD)
    grant(collection, user=user)
    conversation = Conversation.objects.create(collection=collection, user=user, title="markup")
    text = f'Here: {SCRIPT_TEXT} and <img src=x onerror="window.__pwned=2"> with **bold** claims.'
    Answer.objects.create(
        conversation=conversation, question="<b>q</b>", text=text, status="done", model_called=True,
        grounding_score=0.2, grounding_flagged=True, grounding_spans=[{"start": 0, "end": len(text), "text": text, "support": 0.1}],
    )
    _login(page, asgi_server, "olga")
    page.goto(f"{asgi_server}/c/{conversation.id}/")  # type: ignore[attr-defined]
    body = page.inner_text(".qa .answer-body")  # type: ignore[attr-defined]
    assert SCRIPT_TEXT in body and 'onerror="window.__pwned=2"' in body
    assert page.inner_text(".qa .question") == "<b>q</b>"  # type: ignore[attr-defined]
    assert page.locator(".qa .answer-body strong").inner_text() == "bold"  # type: ignore[attr-defined]
    assert page.locator(".qa mark.unsupported").count() >= 1  # type: ignore[attr-defined]
    assert page.locator(".qa .answer-body script, .qa .answer-body img").count() == 0  # type: ignore[attr-defined]
    assert page.evaluate("window.__pwned") is None  # type: ignore[attr-defined]


def test_a_flagged_answer_shows_what_the_documents_say_or_is_replaced_by_it(asgi_server: str, browser_page: object) -> None:
    from chat.models import Answer, Conversation, PassageRecord

    page: Any = browser_page
    collection = Collection.objects.create(name="Evidence")
    user = get_user_model().objects.create_user("eva", password=PASSWORD)
    grant(collection, user=user)
    conversation = Conversation.objects.create(collection=collection, user=user, title="leave")
    record = PassageRecord(
        n=1, chunk_id=1, document_id=10**9, document_name="Employee Handbook.pdf", page_start=2, page_end=2,
        score=0.7, text=HANDBOOK[1],
    )
    invented = "Employees get 95 days of paid leave [1]."
    evidence = "Every full-time employee receives 27 days of paid annual leave per calendar year. [1]"
    common = {
        "conversation": conversation, "question": "How many days of paid leave?", "text": invented, "status": "done",
        "model_called": True, "passages": [record.to_json()], "citations": [1], "grounding_status": "scored",
        "grounding_score": 0.1, "grounding_flagged": True, "evidence_text": evidence, "evidence_citations": [1],
    }
    Answer.objects.create(**common, shown="answer")
    Answer.objects.create(**common, shown="evidence")
    _login(page, asgi_server, "eva")
    page.goto(f"{asgi_server}/c/{conversation.id}/")
    shown, withheld = page.locator(".qa").nth(0), page.locator(".qa").nth(1)
    # evidence: the answer stays, and under it the documents' own sentence with its citation link.
    assert "95 days" in shown.locator(".answer-body").inner_text()
    assert shown.locator(".evidence h4").inner_text() == "What the documents say"
    assert "27 days" in shown.locator(".evidence-body").inner_text()
    link = shown.locator(".evidence-body a.cite")
    assert link.count() == 1 and link.get_attribute("href") == shown.locator(".answer-body a.cite").get_attribute("href")
    # withhold: the evidence replaces the flagged answer, and a note says why.
    assert "95" not in withheld.locator(".answer-body").inner_text()
    assert "27 days" in withheld.locator(".answer-body").inner_text()
    assert "not supported" in withheld.locator(".evidence .withheld-note").inner_text()
    assert withheld.locator(".grounding").inner_text().startswith("Model's answer withheld")
    assert shown.locator(".grounding").inner_text().startswith("Possibly unsupported")


# Where make_text_pdf draws a page's first line (Letter, 612 x 792 pt): from 72 pt in, baseline 72 pt from the
# top, 12 pt letters. Page 2 of HANDBOOK starts with the leave sentence.
FIRST_LINE = (72 / 612, (72 - 12) / 792, 540 / 612, (72 + 4) / 792)


def _over(box: dict[str, float], frame: dict[str, float], area: tuple[float, float, float, float]) -> tuple[float, float]:
    """(share of `box` inside `area`, share of the area's width it spans); `box` and `frame` in pixels as
    Playwright gives them, `area` (x0, y0, x1, y1) in shares of the frame."""
    x0, y0 = (box["x"] - frame["x"]) / frame["width"], (box["y"] - frame["y"]) / frame["height"]
    x1, y1 = x0 + box["width"] / frame["width"], y0 + box["height"] / frame["height"]
    width = max(0.0, min(x1, area[2]) - max(x0, area[0]))
    inside = width * max(0.0, min(y1, area[3]) - max(y0, area[1]))
    return inside / ((x1 - x0) * (y1 - y0)), width / (area[2] - area[0])


def test_a_citation_opens_the_cited_page_highlighted_and_the_file_downloads(
    asgi_server: str, browser_page: object, tmp_path: Path
) -> None:
    """The demo's question in a handbook collection: the citation opens the image of page 2 with a box over
    the leave sentence, page by page, at desktop and phone widths, and the original file downloads."""
    page: Any = browser_page
    collection = Collection.objects.create(name="Handbook")
    user = get_user_model().objects.create_user("hana", password=PASSWORD)
    grant(collection, user=user)
    pdf = make_text_pdf(tmp_path / "handbook.pdf", HANDBOOK)
    document = document_upload(
        collection=collection, upload=SimpleUploadedFile("Employee Handbook.pdf", pdf.read_bytes()), actor=SYSTEM
    ).document
    wait_for(lambda: Document.objects.filter(id=document.id, status="ready").exists(), timeout=180, what="ready")

    _login(page, asgi_server, "hana")
    assert page.inner_text("#conversation-list") == "None yet."
    page.fill("#question", "How many days of paid leave do employees get?")
    page.click("#ask-button")
    # The first conversation replaces "None yet." in the list at once.
    page.wait_for_selector("#conversation-list li.current")
    assert "None yet." not in page.inner_text("#conversation-list")
    page.wait_for_selector(".qa .grounding.grounded, .qa .grounding.flagged, .qa .grounding.unscored", timeout=240_000)
    # The answer gives the handbook's figure, the passage's own sentence, with its citation.
    answer_text = " ".join(page.inner_text(".qa .answer-body").split())
    assert "27 days of paid annual leave" in answer_text, answer_text
    assert page.locator(".qa .answer-body a.cite").count() >= 1
    thumb = page.locator(".qa button.thumb svg").first.bounding_box()
    assert thumb and thumb["width"] >= 12 and thumb["height"] >= 12  # icons drawn without any emoji font

    # The answer's citation of page 2 (a model that does not cite: the source list's entry for page 2).
    sources = page.locator(".qa .citations a", has_text="p. 2")
    assert sources.count() >= 1
    cited = page.locator(".qa .answer-body a.cite")
    target = next(
        (cited.nth(i) for i in range(cited.count()) if cited.nth(i).get_attribute("href") == sources.first.get_attribute("href")),
        sources.first,
    )
    target.click()
    page.wait_for_selector("#page-image")
    page.wait_for_function("() => document.getElementById('page-image').naturalWidth > 0")
    assert page.get_attribute("#page-image", "src") == f"/documents/{document.id}/pages/2.png"
    assert "Page 2 of 3" in page.inner_text("#page-label")
    frame = page.locator("#page-image").bounding_box()
    boxes = [page.locator(".highlight").nth(i).bounding_box() for i in range(page.locator(".highlight").count())]
    # A box lies over the first line (where the leave sentence is drawn) and spans most of it.
    assert boxes and any(inside > 0.9 and across > 0.7 for inside, across in (_over(b, frame, FIRST_LINE) for b in boxes)), (
        boxes, frame,
    )
    # The highlight lies over drawn text: dark pixels of the page image under the first box.
    from io import BytesIO

    from PIL import Image

    shot = Image.open(BytesIO(page.locator(".page-sheet").screenshot())).convert("L")
    scale = shot.width / frame["width"]
    first = boxes[0]
    region = shot.crop((int((first["x"] - frame["x"]) * scale), int((first["y"] - frame["y"]) * scale),
                        int((first["x"] - frame["x"] + first["width"]) * scale), int((first["y"] - frame["y"] + first["height"]) * scale)))
    darkest = region.getextrema()[0]
    assert isinstance(darkest, int | float) and darkest < 80, "no text under the highlight"

    with page.expect_download() as download:
        page.click("#download")
    assert Path(download.value.path()).read_bytes() == pdf.read_bytes()
    assert download.value.suggested_filename == "Employee Handbook.pdf"

    page.click("#next-page")
    page.wait_for_function("() => document.getElementById('page-image').naturalWidth > 0")
    assert page.get_attribute("#page-image", "src").endswith("/pages/3.png") and page.locator(".highlight").count() == 0
    page.click("#prev-page")
    page.click("#fit-width")
    assert page.get_attribute("#fit-width", "aria-pressed") == "false"
    assert page.locator("#page-image").bounding_box()["width"] == page.evaluate("document.getElementById('page-image').naturalWidth")
    page.click("#fit-width")
    # At a phone's width the page and its highlight fit the screen; nothing scrolls sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.wait_for_function("() => document.getElementById('page-image').naturalWidth > 0")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator(".highlight").first.is_visible()
