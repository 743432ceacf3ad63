"""The citation viewer's costs on real 10-Q pages: a page image rendered cold and served from the cache, and
locating a passage on its page (what each answer pays per passage, at answer time).

`python -m bench.run --only pages`. Runs our services on a stored document (temporary SQLite and data dir).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import SEC_DIR, Skipped, median, percentile

PDF_NAME = "2022 Q3 AAPL.pdf"


def _ms(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(median(samples), 1), "p95_ms": round(percentile(samples, 95), 1), "n": len(samples)}


def pages_bench(*, pages: int = 12, log: Callable[[str], None] = print) -> dict[str, Any]:
    path = SEC_DIR / "pdfs" / PDF_NAME
    if not path.exists():
        raise Skipped(f"{path} is absent (the shared evaluation data)")
    from django.conf import settings
    from django.core.files.uploadedfile import SimpleUploadedFile

    from audit.services import Actor
    from ingestion.locate import passage_locate
    from ingestion.models import Collection, Document
    from ingestion.pages import page_cache_forget, page_image
    from ingestion.parsers.pdf import pdf_parse
    from ingestion.services import document_upload

    parsed = pdf_parse(path=path, ocr=False)
    collection, _ = Collection.objects.get_or_create(name="Bench pages")
    document = document_upload(
        collection=collection, upload=SimpleUploadedFile(PDF_NAME, path.read_bytes()), actor=Actor.system("bench")
    ).document
    Document.objects.filter(id=document.id).update(status=Document.Status.READY, page_count=parsed.page_count)
    document.refresh_from_db()
    page_cache_forget(document_id=document.id)
    numbers = [1 + i * (parsed.page_count - 1) // max(pages - 1, 1) for i in range(pages)]
    cold, cached, sizes, locate = [], [], [], []
    for number in numbers:
        t0 = time.perf_counter()
        data = page_image(document=document, number=number)
        cold.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        page_image(document=document, number=number)
        cached.append((time.perf_counter() - t0) * 1000)
        sizes.append(len(data))
        text = parsed.units[number - 1].text[:1200]  # about a chunk (240 tokens)
        if text:
            t0 = time.perf_counter()
            passage_locate(document=document, page_start=number, page_end=number, text=text)
            locate.append((time.perf_counter() - t0) * 1000)
    log(f"  pages: cold {_ms(cold)}, cached {_ms(cached)}, locate {_ms(locate)}")
    page_cache_forget(document_id=document.id)
    return {
        "pdf": PDF_NAME, "pages": numbers, "width_px": settings.PAGE_IMAGE_WIDTH, "render_cold": _ms(cold),
        "render_cached": _ms(cached), "png_kb_median": round(median([s / 1024 for s in sizes]), 1),
        "passage_locate": _ms(locate), "source": str(Path(path).relative_to(SEC_DIR.parent.parent)),
    }
