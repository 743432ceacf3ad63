"""OCR of rendered page images with RapidOCR (ONNX models shipped inside the package; no download).

The engine is heavy (three ONNX sessions, about a second to build), so it is the `ocr` component
(settings.COMPONENTS): built once per process on the first page that needs it, so web processes and
`migrate` never pay for it. Its `warm_up()` loads it ahead of time and is safe to call twice.

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
        boxes = _reading_order([b for b in (_box_from(item, top, left) for item in result or ()) if b.text])
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
