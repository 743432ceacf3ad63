"""OCR of rendered page images: Tesseract (Debian's tesseract-ocr with its English, French, German and Spanish
models, through pytesseract) where installed, else RapidOCR (ONNX models shipped inside the package).

RapidOCR's bundled models are Chinese/English: they drop accents and the spaces around them ("Portez ce vieux
whisky" came out "Portezcevieuxwhisky"), so French, German and Spanish scans were read poorly; Tesseract's
Latin models keep both (bench/ocr.py measures it). Tesseract is a system package, which `make test` installs
(scripts/system-deps.sh) but a bare machine running `make run` may lack: then TesseractOcrEngine logs a
warning and reads with RapidOCR, so OCR still works. Nothing is downloaded at run time by either.

The engine is the `ocr` component (settings.COMPONENTS): built once per process on the first page that needs
it, so web processes and `migrate` never pay for it. Its `warm_up()` loads it ahead of time and is safe to
call twice.

RapidOCR returns one box per detected text line, sorted top-to-bottom, which interleaves the lines
of side-by-side columns. `_reading_order` puts them back in reading order with a recursive XY-cut.
The lines come back with their boxes: the citation viewer highlights a passage of a scanned page by
them (kept per page at ingestion, ingestion.models.OcrPage).
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ingestion.exceptions import OcrFailed
from ingestion.parsers.base import TextLine
from ragsite.components import LoadsOnce, component

logger = logging.getLogger(__name__)

_MIN_SIDE = 32  # RapidOCR's min_side_len (30), rounded up
_MAX_ASPECT = 4  # long side over short side, at most, of what the engine gets (see _aspect_padded)


@dataclass(frozen=True)
class _Box:
    x0: float
    y0: float
    x1: float
    y1: float
    text: str

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass(frozen=True)
class OcrReading:
    text: str  # the lines in reading order, joined ('' when none)
    lines: tuple[TextLine, ...]  # in reading order; boxes in pixels of the image that was read


class OcrEngine(Protocol):
    def warm_up(self) -> None: ...

    def read(self, *, image: np.ndarray) -> OcrReading:
        """The text in `image` (H×W grey or H×W×3 BGR, uint8), lines in reading order, with their boxes.

        Raises OcrFailed when the engine cannot process the image.
        """
        ...


class RapidOcrEngine(LoadsOnce):
    """RapidOCR with its bundled Chinese/English models.

    `threads` per ONNX session: 1 by default because ingest workers are one process per core, and
    N processes each spinning N threads oversubscribe the machine (on a busy 2-core box one thread
    OCR'd a page in half the wall time of two). A lone process may ask for more.
    """

    def __init__(self, *, threads: int = 1) -> None:
        self._threads = threads
        self._engine: Any = None
        # Calling concurrently is unsafe because RapidOCR keeps per-call state on the engine object. OCR
        # saturates every core anyway, so serialising costs little.
        self._lock = threading.Lock()

    def _load(self) -> None:
        from rapidocr_onnxruntime import RapidOCR  # heavy (onnxruntime, OpenCV): only where OCR runs

        self._engine = RapidOCR(intra_op_num_threads=self._threads, inter_op_num_threads=1)
        logger.info("event=ocr_engine_built", extra={"threads": self._threads})

    def read(self, *, image: np.ndarray) -> OcrReading:
        if image.ndim not in (2, 3) or image.size == 0:
            raise OcrFailed(f"OCR needs a non-empty 2-D image, got shape {image.shape}")
        self.warm_up()
        padded, (top, left) = _aspect_padded(image)
        try:
            with self._lock:
                result, _timings = self._engine(padded)
        except _engine_errors() as exc:
            raise OcrFailed(f"OCR engine failed: {type(exc).__name__}: {exc}") from exc
        return _reading(_reading_order([b for b in (_box_from(item, top, left) for item in result or ()) if b.text]))


class TesseractOcrEngine(LoadsOnce):
    """Tesseract 5 (LSTM models) through pytesseract, one `tesseract` process per page.

    `languages` are Tesseract's model names joined by '+' ("eng+fra+deu+spa": one pass reads a page in any of
    them; those not installed are left out with a warning). `psm` is the page segmentation mode (3: automatic,
    columns found by Tesseract's layout analysis). `timeout` (s) bounds one page. Without the tesseract
    binary or any of the models, `fallback` (a class's dotted path) reads instead.
    """

    def __init__(
        self,
        *,
        languages: str = "eng+fra+deu+spa",
        psm: int = 3,
        timeout: float = 120.0,
        fallback: str = "ingestion.ocr.RapidOcrEngine",
    ) -> None:
        self._requested = languages
        self._languages = ""
        self._psm = psm
        self._timeout = timeout
        self._fallback_path = fallback
        self._fallback: OcrEngine | None = None

    @property
    def languages(self) -> str:
        """The models this engine reads with ('' before warm_up, or when it fell back)."""
        return self._languages

    @property
    def fell_back(self) -> bool:
        return self._fallback is not None

    def _load(self) -> None:
        import pytesseract

        try:
            installed = set(pytesseract.get_languages(config=""))
        except (pytesseract.TesseractNotFoundError, pytesseract.TesseractError, OSError) as exc:
            self._fall_back(f"tesseract is not installed or does not run ({type(exc).__name__})")
            return
        wanted = [lang for lang in self._requested.split("+") if lang]
        usable = [lang for lang in wanted if lang in installed]
        if not usable:
            self._fall_back(f"none of the Tesseract models {self._requested} is installed")
            return
        if len(usable) < len(wanted):
            logger.warning(
                "event=ocr_languages_missing",
                extra={"missing": "+".join(sorted(set(wanted) - set(usable))), "using": "+".join(usable)},
            )
        self._languages = "+".join(usable)
        logger.info("event=ocr_engine_built", extra={"engine": "tesseract", "languages": self._languages})

    def _fall_back(self, reason: str) -> None:
        from ragsite.components import component_at

        logger.warning(
            "event=ocr_engine_fallback",
            extra={"reason": reason, "fallback": self._fallback_path,
                   "fix": "apt-get install tesseract-ocr tesseract-ocr-fra tesseract-ocr-deu tesseract-ocr-spa"},
        )
        fallback: OcrEngine = component_at(self._fallback_path)
        fallback.warm_up()
        self._fallback = fallback

    def read(self, *, image: np.ndarray) -> OcrReading:
        if image.ndim not in (2, 3) or image.size == 0:
            raise OcrFailed(f"OCR needs a non-empty 2-D image, got shape {image.shape}")
        self.warm_up()
        if self._fallback is not None:
            return self._fallback.read(image=image)
        import pytesseract
        from PIL import Image

        if image.ndim == 3 and image.shape[2] != 3:
            raise OcrFailed(f"OCR engine failed: an image of {image.shape[2]} channels (grey or BGR wanted)")
        picture = Image.fromarray(image if image.ndim == 2 else np.ascontiguousarray(image[:, :, ::-1]))
        try:
            data = pytesseract.image_to_data(
                picture, lang=self._languages, config=f"--psm {self._psm}", timeout=self._timeout,
                output_type=pytesseract.Output.DICT,
            )
        except (pytesseract.TesseractError, RuntimeError, OSError) as exc:  # RuntimeError: the timeout
            raise OcrFailed(f"OCR engine failed (tesseract): {type(exc).__name__}: {str(exc)[:200]}") from exc
        # Tesseract's lines, cut where words stand a column gutter apart, then put in reading order by the
        # same XY-cut as RapidOCR's boxes (Tesseract alone reads short aligned columns across, as rows).
        return _reading(_reading_order(_tesseract_boxes(data)))


def _tesseract_boxes(data: dict[str, list[Any]]) -> list[_Box]:
    lines: dict[tuple[int, int, int], list[_Box]] = {}
    for k, word in enumerate(data["text"]):
        if str(word).strip() and float(data["conf"][k]) >= 0:
            x, y, w, h = (int(data[key][k]) for key in ("left", "top", "width", "height"))
            key = (int(data["block_num"][k]), int(data["par_num"][k]), int(data["line_num"][k]))
            lines.setdefault(key, []).append(_Box(x, y, x + w, y + h, str(word).strip()))
    boxes: list[_Box] = []
    for words in lines.values():
        height = statistics.median(b.height for b in words)
        segment = [words[0]]
        for word in words[1:]:
            if word.x0 - segment[-1].x1 > 2.5 * height:  # a gutter, not a space between words
                boxes.append(_merged(segment))
                segment = []
            segment.append(word)
        boxes.append(_merged(segment))
    return boxes


def _merged(words: list[_Box]) -> _Box:
    return _Box(
        min(b.x0 for b in words), min(b.y0 for b in words), max(b.x1 for b in words), max(b.y1 for b in words),
        " ".join(b.text for b in words),
    )


def _reading(boxes: list[_Box]) -> OcrReading:
    """Lines in reading order: their text joined, and each with its box."""
    return OcrReading(_text_join(boxes), tuple(TextLine(b.x0, b.y0, b.x1, b.y1, b.text) for b in boxes))


def image_ocr(*, image: np.ndarray) -> OcrReading:
    """The text in `image` and its lines, read by this process's OCR engine (see OcrEngine.read)."""
    engine: OcrEngine = component("ocr")
    return engine.read(image=image)


def _aspect_padded(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad a long, thin image with white so its short side is at least a quarter of its long side.

    RapidOCR scales images up, keeping their shape, until the short side reaches 30 px and then, for
    detection, 736 px: a 2000×3 px strip (a long, thin page) grew to 20000×5000 and took 7 minutes,
    a 3×2000 one to 736×46000. Padded, neither grows past about 3000×736. Also returns the (top, left)
    padding, which boxes found in the padded image are shifted back by.
    """
    height, width = image.shape[:2]
    target = max(_MIN_SIDE, math.ceil(max(height, width) / _MAX_ASPECT))
    axis = 0 if height < width else 1
    extra = target - image.shape[axis]
    if extra <= 0:
        return image, (0, 0)
    widths = [(0, 0)] * image.ndim
    widths[axis] = (extra // 2, extra - extra // 2)
    offset = (extra // 2, 0) if axis == 0 else (0, extra // 2)
    return np.pad(image, widths, constant_values=255), offset


def _engine_errors() -> tuple[type[BaseException], ...]:
    # What RapidOCR and its dependencies raise for an image they cannot handle: ONNX Runtime
    # failures are wrapped in ONNXRuntimeError, OpenCV raises cv2.error, resizing degenerate images
    # raises ResizeImgError. Anything else is a bug and should surface.
    import cv2
    from rapidocr_onnxruntime.ch_ppocr_det.utils import ResizeImgError as DetResizeError
    from rapidocr_onnxruntime.utils.infer_engine import ONNXRuntimeError
    from rapidocr_onnxruntime.utils.load_image import LoadImageError
    from rapidocr_onnxruntime.utils.process_img import ResizeImgError

    return (
        ONNXRuntimeError,
        LoadImageError,
        ResizeImgError,
        DetResizeError,
        cv2.error,
        ValueError,
        MemoryError,
    )


def _box_from(item: Sequence[Any], top: int = 0, left: int = 0) -> _Box:
    points, text = item[0], item[1]
    xs = [float(p[0]) - left for p in points]
    ys = [float(p[1]) - top for p in points]
    return _Box(min(xs), min(ys), max(xs), max(ys), str(text).strip())


def _gaps(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Uncovered intervals between the union of `spans` (projection profile of the boxes)."""
    gaps: list[tuple[float, float]] = []
    ordered = sorted(spans)
    reach = ordered[0][1]
    for start, end in ordered[1:]:
        if start > reach:
            gaps.append((reach, start))
        reach = max(reach, end)
    return gaps


def _split(boxes: list[_Box], line_height: float) -> list[list[_Box]] | None:
    """Cut a group of boxes into parts in reading order, or None if it is one block."""
    if len(boxes) < 2:
        return None
    x_gaps = _gaps([(b.x0, b.x1) for b in boxes])
    y_gaps = _gaps([(b.y0, b.y1) for b in boxes])
    widest_x = max(x_gaps, key=lambda g: g[1] - g[0], default=None)
    widest_y = max((g[1] - g[0] for g in y_gaps), default=0.0)
    # A column gutter is wider than the space between lines; a gap narrower than half a line is
    # just the space between words of one line, which row sorting handles.
    if widest_x is not None and (widest_x[1] - widest_x[0]) >= max(widest_y, 0.5 * line_height):
        cut = (widest_x[0] + widest_x[1]) / 2
        return [[b for b in boxes if b.x1 <= cut], [b for b in boxes if b.x1 > cut]]
    if not y_gaps:
        return None
    # Cut only at the widest horizontal gaps (paragraph or section breaks) first. Cutting at every
    # line gap would slice side-by-side columns whose lines happen to align into rows.
    cuts = [(g[0] + g[1]) / 2 for g in y_gaps if (g[1] - g[0]) >= 0.8 * widest_y]
    parts: list[list[_Box]] = [[] for _ in range(len(cuts) + 1)]
    for box in boxes:
        parts[sum(1 for c in cuts if box.y0 > c)].append(box)
    return [p for p in parts if p]


def _rows(boxes: list[_Box]) -> list[_Box]:
    """Boxes of one block, line by line, left to right (boxes overlapping vertically share a line)."""
    ordered: list[_Box] = []
    row: list[_Box] = []
    for box in sorted(boxes, key=lambda b: (b.y0 + b.y1) / 2):
        if row and (box.y0 + box.y1) / 2 > max(b.y1 for b in row):
            ordered += sorted(row, key=lambda b: b.x0)
            row = []
        row.append(box)
    return ordered + sorted(row, key=lambda b: b.x0)


def _reading_order(boxes: list[_Box]) -> list[_Box]:
    if not boxes:
        return []
    line_height = statistics.median(b.height for b in boxes)
    ordered: list[_Box] = []
    stack = [boxes]  # explicit stack: a page can hold thousands of boxes, too deep for recursion
    while stack:
        group = stack.pop()
        parts = _split(group, line_height)
        if parts is None or len(parts) == 1:
            ordered += _rows(group)
        else:
            stack.extend(reversed(parts))
    return ordered


def _text_join(boxes: list[_Box]) -> str:
    if not boxes:
        return ""
    line_height = statistics.median(b.height for b in boxes)
    out = [boxes[0].text]
    for prev, box in zip(boxes, boxes[1:], strict=False):
        overlap = min(prev.y1, box.y1) - max(prev.y0, box.y0)
        if overlap > 0.5 * min(prev.height, box.height) and box.x0 >= prev.x0:
            out.append(" ")  # further along the same line
        elif box.y0 - prev.y1 > 0.9 * line_height or box.y1 < prev.y0:
            out.append("\n\n")  # a paragraph gap, or back up to the top of the next column
        else:
            out.append("\n")
        out.append(box.text)
    return "".join(out)
