"""`python -m bench.ocr [--engines rapidocr tesseract] [--pages N]`: OCR character error rate and seconds per page.

Scans are made here from known sentences (English, French, German, Spanish), laid out as an A4 page at 200 dpi
(the PDF parser's rendering) with 11-pt text, a little blur and noise, so the expected text is exact; the
real scans of ../shared/eval/pdfs/scanned with expected text (linn, and ccitt and jbig2, the same page in
other encodings) are read through the PDF parser's rendering. CER = edit distance / expected length, both with
whitespace collapsed, and case and accents kept (a lost accent or space is an error). No database needed.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ROOT.parent / "shared" / "eval" / "pdfs" / "scanned"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf")

SENTENCES = {
    "en": [
        "The quarterly audit of the warehouse found forty-two misplaced pallets of copper wire.",
        "Employees receive twenty-seven days of paid annual leave, and five of them may be carried over.",
        "Visitors must wear the orange badge at all times and sign out at reception before leaving.",
        "Invoices are paid within thirty days of receipt unless the contract states otherwise.",
    ],
    "fr": [
        "Portez ce vieux whisky au juge blond qui fume, dit l'élève à côté de la fenêtre.",
        "Les congés payés sont de vingt-cinq jours ouvrés par an et peuvent être reportés.",
        "À la réception, présentez votre badge ; l'accès au laboratoire est réservé au personnel.",
        "Le remboursement des frais de déplacement est effectué après vérification des reçus.",
    ],
    "de": [
        "Überstunden werden mit fünfundzwanzig Prozent Zuschlag vergütet, höchstens zehn pro Monat.",
        "Die Kündigungsfrist beträgt drei Monate zum Quartalsende, sofern nichts anderes vereinbart ist.",
        "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
        "Für Dienstreisen gilt die Reisekostenordnung; Belege müssen binnen vier Wochen eingereicht werden.",
    ],
    "es": [
        "El pingüino Wenceslao hizo kilómetros bajo exhaustiva lluvia y frío, añoraba a su querido cachorro.",
        "Los empleados tienen derecho a veintidós días de vacaciones pagadas al año, según el convenio.",
        "La señalización de emergencia debe revisarse cada seis meses; ¿quién es el responsable?",
        "Las facturas se abonan en un plazo de treinta días a partir de su recepción.",
    ],
}


def cer(expected: str, read: str) -> float:
    """Character error rate: Levenshtein distance over the expected length, whitespace collapsed."""
    a, b = " ".join(expected.split()), " ".join(read.split())
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1] / max(len(a), 1)


def page_scan(lines: list[str], *, seed: int) -> np.ndarray:
    """An A4 page at 200 dpi (1654×2339) with 11-pt serif text (31 px), blurred and noised like a scan."""
    image = Image.new("L", (1654, 2339), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), 31)
    y = 180
    for line in lines:
        words, row = line.split(), ""
        for word in words:  # wrap at the page's text width
            trial = f"{row} {word}".strip()
            if draw.textlength(trial, font=font) > 1654 - 2 * 170 and row:
                draw.text((170, y), row, fill=0, font=font)
                y, row = y + 50, word
            else:
                row = trial
        draw.text((170, y), row, fill=0, font=font)
        y += 80
    blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(0.7)), dtype=np.float32)
    noisy = blurred + np.random.default_rng(seed).normal(0, 12, blurred.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (Tesseract runs as one): comparable on a busy machine."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _engine(name: str) -> Any:
    from ingestion.ocr import RapidOcrEngine, TesseractOcrEngine

    engine = RapidOcrEngine() if name == "rapidocr" else TesseractOcrEngine()
    engine.warm_up()
    return engine


def _real_scans() -> list[tuple[str, np.ndarray, str]]:
    from ingestion.parsers.pdf import _page_render, pdf_open  # the parser's own rendering

    expected = SCANNED / "linn.expected.txt"
    if not expected.is_file():
        return []
    out = []
    for name in ("linn.pdf", "ccitt.pdf", "jbig2.pdf"):
        doc = pdf_open(SCANNED / name)
        try:
            page = doc[0]
            out.append((name, _page_render(page), expected.read_text(encoding="utf-8")))
            page.close()
        finally:
            doc.close()
    return out


def run(engines: list[str], pages: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in engines:
        engine = _engine(name)
        per_language: dict[str, Any] = {}
        for lang, sentences in SENTENCES.items():
            rates, seconds, cpu = [], [], []
            for k in range(pages):
                lines = sentences[k % len(sentences):] + sentences[: k % len(sentences)]
                image = page_scan(lines * 3, seed=k)
                t0, c0 = time.perf_counter(), _cpu()
                read = engine.read(image=image).text
                seconds.append(time.perf_counter() - t0)
                cpu.append(_cpu() - c0)
                rates.append(cer(" ".join(lines * 3), read))
            per_language[lang] = {
                "cer": round(statistics.mean(rates), 4), "seconds_per_page": round(statistics.median(seconds), 2),
                "cpu_seconds_per_page": round(statistics.median(cpu), 2),
            }
            print(f"{name:9s} {lang}: {per_language[lang]}", file=sys.stderr)
        real = {}
        for scan, image, expected in _real_scans():
            t0, c0 = time.perf_counter(), _cpu()
            read = engine.read(image=image).text
            real[scan] = {
                "cer": round(cer(expected, read), 4), "seconds": round(time.perf_counter() - t0, 2),
                "cpu_seconds": round(_cpu() - c0, 2),
            }
            print(f"{name:9s} {scan}: {real[scan]}", file=sys.stderr)
        results[name] = {"synthetic": per_language, "real": real, "languages": getattr(engine, "languages", "")}
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ocr", description=__doc__)
    parser.add_argument("--engines", nargs="+", default=["rapidocr", "tesseract"], choices=["rapidocr", "tesseract"])
    parser.add_argument("--pages", type=int, default=2, help="synthetic pages per language")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.engines, args.pages), indent=2))


if __name__ == "__main__":
    main()
