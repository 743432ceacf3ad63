"""Every real PDF in ../shared/eval/pdfs/ through the whole pipeline (upload → worker → index) at once.

The manifest's category says what a person should see: text PDFs READY; scans READY through OCR (or
with a warning naming pages); password-protected files FAILED saying so; damaged files FAILED with a
specific reason or READY if readable. No crash, no stuck job, no effect on the others.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pypdf import PasswordType, PdfReader

from ingestion.models import Chunk, Collection, Document
from ingestion.services import document_upload
from retrieval.services import chunks_search
from tests.conftest import WorkerProcess, eval_dir, wait_for
from tests.grants import SYSTEM

pytestmark = [pytest.mark.slow, pytest.mark.eval, pytest.mark.django_db(transaction=True)]

SPECIFIC_CODES = {"not_pdf", "unsupported_type", "encrypted", "corrupt", "empty", "no_text"}


def _opens_without_password(path: Path) -> bool:
    """pypdf, an independent reader, decides whether a file needs a user password: it opens without one when
    the empty password is its user password. (An empty *owner* password is not that: readers ask for the
    user password, and with `cryptography` installed pypdf accepts the empty owner password of r6-user-password.pdf.)"""
    try:
        reader = PdfReader(path)
        return not reader.is_encrypted or reader.decrypt("") == PasswordType.USER_PASSWORD
    except Exception:  # noqa: BLE001 - any failure here means "cannot tell": treat as needing one
        return False


def test_every_real_pdf_ends_in_the_state_its_category_implies(celery_worker_process: WorkerProcess) -> None:
    root = eval_dir("pdfs")
    with open(root / "MANIFEST.tsv", newline="") as fh:
        manifest = list(csv.DictReader(fh, delimiter="\t"))
    collection = Collection.objects.create(name="Real PDFs")
    for row in manifest:
        path = root / row["file"]
        document_upload(collection=collection, upload=SimpleUploadedFile(row["file"], path.read_bytes()), actor=SYSTEM)

    def finished() -> bool:
        return not Document.objects.exclude(status__in=["ready", "failed"]).exists()

    wait_for(finished, timeout=1800, interval=2, what="all real PDFs to finish")
    # Documents are matched by content: files with identical bytes are stored once.
    docs = {d.sha256: d for d in Document.objects.filter(collection=collection)}
    problems = []
    for row in manifest:
        category, path = row["category"], root / row["file"]
        doc = docs[hashlib.sha256(path.read_bytes()).hexdigest()]
        if category in ("good", "tables", "scanned"):
            ok = doc.status == "ready"
        elif category == "encrypted":
            ok = doc.status == "ready" if _opens_without_password(path) else (
                doc.status == "failed" and doc.error_code == "encrypted" and "password" in doc.error.lower()
            )
        else:  # malformed: a specific reason, or readable after repair
            ok = doc.status == "ready" or (doc.status == "failed" and doc.error_code in SPECIFIC_CODES and len(doc.error) > 20)
        if not ok:
            problems.append(f"{row['file']} ({category}): {doc.status} {doc.error_code} {doc.error}")
    assert not problems, "\n".join(problems)
    assert not Chunk.objects.filter(document__status="failed").exists()

    # OCR made the scans searchable: the brochure's title finds its page.
    hits = chunks_search(collection_id=collection.id, query="LinnSequencer 32 track MIDI sequence recorder", k=3)
    # linn, ccitt and jbig2 are the same scanned page in three encodings.
    assert hits and hits[0].document_name in {"linn.pdf", "ccitt.pdf", "jbig2.pdf"} and hits[0].score > 0.6
