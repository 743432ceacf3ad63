"""Clean-up of extracted text: line breaks, invisible characters, words broken across lines, readability.

Pure string functions, shared by the PDF text layer and OCR output.
"""

from __future__ import annotations

import re
import unicodedata

# Characters that carry no text: controls (NUL included), invisible format marks, private-use
# glyphs (pieces of big brackets in maths fonts) and surrogates. Zero-width (non-)joiners stay:
# some scripts need them. Built once, over the BMP only: get_text_range() is UCS-2.
_INVISIBLE: dict[int, str | None] = {
    code: None
    for code in range(0x10000)
    if unicodedata.category(chr(code)) in ("Cc", "Cf", "Co", "Cs") and chr(code) not in "\n\t\u200c\u200d"
}
_INVISIBLE[0xFFFE] = "-"  # PDFium's line-end hyphen marker, where it did not sit between two words
_INVISIBLE[0xFFFF] = None
_NEWLINES = str.maketrans({"\r": "\n", "\u2028": "\n", "\u2029": "\n\n", "\f": "\n\n", "\v": "\n", "\t": " "})
# A word broken at a line end: PDFium drops the line break and marks the hyphen with U+FFFE; a soft
# hyphen is U+00AD; OCR and other producers leave a plain '-' before the newline.
_BROKEN_WORD = re.compile(r"(\w+)(\ufffe|\u00ad[ \t]*\n?|-[ \t]*\n)[ \t]*(\w+)")
_REPEATED_MARK = re.compile(r"([^\w\s])(?:\s*\1)+")


def text_normalize(*, text: str) -> str:
    """Clean extracted text: one kind of line break, no invisible characters, single spaces,
    words re-joined across line-end hyphens, paragraph breaks (blank lines) kept, at most one."""
    # NFKC folds ligatures (ﬁ → fi), full-width forms and no-break spaces, so search finds them.
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n")).translate(_NEWLINES)
    lowered = text.lower()
    text = _BROKEN_WORD.sub(lambda m: _word_join(m, lowered), text)
    text = text.translate(_INVISIBLE)
    text = re.sub(r"[^\S\n]+", " ", text)
    text = re.sub(r" ?\n ?", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _word_join(match: re.Match[str], lowered: str) -> str:
    left, mark, right = match.group(1), match.group(2), match.group(3)
    if mark[0] == "\u00ad":
        return left + right  # a soft hyphen only ever marks where a word may break
    if not (left[-1].isalpha() and right[0].islower()):
        # '0.3-\n10 keV', 'Just-in\ufffeTime': a real hyphen (or dash) between numbers or names.
        return f"{left}-{right}" if mark == "\ufffe" else match.group(0)
    # Safe to join only when nothing says the hyphen is part of the word: a compound such as
    # 'mixed-mode' that appears hyphenated elsewhere on the page keeps its hyphen.
    if f"{left}-{right}".lower() in lowered:
        return f"{left}-{right}"
    return left + right


def text_readability(*, text: str) -> tuple[int, float]:
    """(letters and digits, their share of the visible characters). Runs of one mark, such as
    dot leaders in a table of contents, count once so they do not make a real page look like garbage."""
    visible = [c for c in _REPEATED_MARK.sub(r"\1", text) if not c.isspace()]
    readable = sum(1 for c in visible if c.isalnum())
    return readable, (readable / len(visible) if visible else 0.0)
