"""OCR of accented Latin text: French, German and Spanish scans made here from known sentences come out with
their accents and spaces (character error rate), and the Tesseract engine falls back to the bundled RapidOCR,
with a warning, on a machine without the tesseract packages."""

from __future__ import annotations

import logging

import pytest

from bench.ocr import SENTENCES, cer, page_scan
from ingestion.ocr import RapidOcrEngine, TesseractOcrEngine


@pytest.fixture(scope="module")
def tesseract() -> TesseractOcrEngine:
    engine = TesseractOcrEngine()
    engine.warm_up()
    if engine.fell_back:
        pytest.skip("tesseract-ocr is not installed here (scripts/system-deps.sh installs it)")
    return engine


@pytest.mark.slow
@pytest.mark.parametrize("language", ["fr", "de", "es"])
def test_accented_scans_keep_their_accents_and_spaces(tesseract: TesseractOcrEngine, language: str) -> None:
    lines = SENTENCES[language]
    read = tesseract.read(image=page_scan(lines, seed=1)).text
    assert cer(" ".join(lines), read) < 0.03, read
    assert lines[0].split()[1] in read  # a word next to its neighbour, not glued to it


def test_without_tesseract_it_reads_with_rapidocr_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    engine = TesseractOcrEngine()
    with caplog.at_level(logging.WARNING, logger="ingestion.ocr"):
        engine.warm_up()
    assert engine.fell_back and engine.languages == ""
    assert any("event=ocr_engine_fallback" in r.getMessage() for r in caplog.records)
    assert isinstance(engine._fallback, RapidOcrEngine)
