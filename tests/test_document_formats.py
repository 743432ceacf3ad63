"""Word, HTML, Markdown and UTF-16 text files through the whole pipeline (upload page → real worker → database →
index → search), in one batch with a binary renamed .docx that is refused without touching the others; and
how a section is cited (prompt, answer records of old and new answers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from chat.models import PassageRecord
from ingestion.models import Chunk, Collection, Document
from llm.prompts import PromptPassage, passage_format
from retrieval.services import chunks_search
from tests import doc_factory
from tests.conftest import WorkerProcess, wait_for
from tests.pdf_factory import make_text_pdf

FILLER = "This paragraph restates general guidance for staff in ordinary words so that each section is long enough. " * 3


def _files(tmp_path: Path) -> dict[str, Path]:
    return {
        "handbook.docx": doc_factory.make_docx(
            tmp_path / "handbook.docx",
            [
                ("Leave", ["Employees receive twenty-seven days of paid annual leave. " + FILLER]),
                ("Travel", ["Business travellers are reimbursed for meals at the rates below. " + FILLER]),
            ],
            title="Staff handbook",
            table=("Meal allowances per city", doc_factory.ALLOWANCE_HEADERS, doc_factory.ALLOWANCE_ROWS),
        ),
        "security.html": doc_factory.make_html(
            tmp_path / "security.html",
            f"<h1>Badges</h1><p>Visitors must wear the orange badge at all times in the laboratory. {FILLER}</p>"
            f"<h2>Laptops</h2><p>Laptops are locked with a cable when left on a desk overnight. {FILLER}</p>",
            title="Security policy",
        ),
        "remote.md": doc_factory.make_text(
            tmp_path / "remote.md",
            f"# Remote work\n\nStaff may work from home on Mondays and Fridays. {FILLER}\n\n"
            f"## Equipment\n\nThe company pays for an ergonomic chair once every five years. {FILLER}\n",
        ),
        "notes.txt": doc_factory.make_text(
            tmp_path / "notes.txt",
            f"Überstunden werden mit fünfundzwanzig Prozent Zuschlag vergütet. {FILLER}",
            encoding="utf-16-le",
        ),
        "memo.pdf": make_text_pdf(tmp_path / "memo.pdf", [f"The canteen serves lunch from noon. {FILLER}"]),
    }


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_documents_of_every_type_become_sections_and_are_found(
    celery_worker_process: WorkerProcess, admin_client: Client, tmp_path: Path
) -> None:
    collection = Collection.objects.create(name="Formats")
    files = _files(tmp_path)
    uploads = [SimpleUploadedFile(name, path.read_bytes()) for name, path in files.items()]
    uploads.append(SimpleUploadedFile("budget.docx", os.urandom(3000)))  # binary, renamed .docx
    response = admin_client.post("/documents/upload/", {"collection": collection.id, "files": uploads})
    assert response.status_code == 302

    def finished() -> dict[str, Document] | None:
        docs = {d.original_name: d for d in Document.objects.filter(collection=collection)}
        return docs if len(docs) == len(uploads) and all(d.is_finished for d in docs.values()) else None

    docs = wait_for(finished, timeout=300, what="every upload to finish")
    refused = docs.pop("budget.docx")
    assert (refused.status, refused.error_code) == (Document.Status.FAILED, "unsupported_type")
    assert refused.error.startswith("This file is binary data of an unknown kind, which cannot be read: upload one of PDF")
    assert {n: (d.status, d.unit) for n, d in docs.items()} == {
        n: (Document.Status.READY, "page" if n.endswith(".pdf") else "section") for n in files
    }, {n: d.error for n, d in docs.items()}
    assert {n: Path(d.file.name).suffix for n, d in docs.items()} == {n: Path(n).suffix for n in files}

    sections = {
        name: list(Chunk.objects.filter(document=doc).order_by("ordinal").values_list("section", flat=True).distinct())
        for name, doc in docs.items()
    }
    assert sections == {
        "handbook.docx": ["Leave", "Travel"],
        "security.html": ["Badges", "Laptops"],
        "remote.md": ["Remote work", "Equipment"],
        "notes.txt": ["Text"],
        "memo.pdf": [""],
    }
    assert not Chunk.objects.filter(text__regex=r"script-text|late script|Careers navigation|intranet form|Copyright footer").exists()

    def top(query: str) -> tuple[str, str, str]:
        hit = chunks_search(collection_id=collection.id, query=query, k=3)[0]
        return hit.document_name, hit.where, hit.text

    name, where, text = top("dinner allowance in Oslo")
    assert (name, where) == ("handbook.docx", "Travel")
    assert "Meal allowances per city — Oslo | Breakfast: 120 NOK | Dinner: 455 NOK" in text  # figure and labels together
    assert top("Which badge must visitors wear in the laboratory?")[:2] == ("security.html", "Badges")
    assert top("Does the company pay for an ergonomic chair?")[:2] == ("remote.md", "Equipment")
    assert top("Überstunden Zuschlag vergütet")[:2] == ("notes.txt", "Text")
    assert top("When does the canteen serve lunch?")[:2] == ("memo.pdf", "p. 1")


def test_a_section_is_cited_by_its_title_and_a_page_by_its_number() -> None:
    section = PromptPassage(1, "handbook.docx", 2, 2, "Employees receive 27 days.", 0.8, "Leave")
    page = PromptPassage(2, "memo.pdf", 3, 4, "Lunch from noon.", 0.7)
    assert passage_format(number=1, passage=section).splitlines()[1] == '[1] handbook.docx, section "Leave"'
    assert passage_format(number=2, passage=page).splitlines()[1] == "[2] memo.pdf, p. 3-4"


def test_answer_records_say_where_and_old_records_still_load() -> None:
    new = PassageRecord(1, 7, 3, "handbook.docx", 2, 2, 0.8, "27 days.", section="Leave")
    assert PassageRecord.from_json(new.to_json()) == new and new.where == "Leave"
    old = {k: v for k, v in new.to_json().items() if k != "section"}  # stored before sections existed
    assert PassageRecord.from_json(old).where == "p. 2"
