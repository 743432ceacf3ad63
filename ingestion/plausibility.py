"""Is extracted text plausible for its language? For text layers whose letters are real letters but the wrong
ones: a PDF font that maps its glyphs to wrong code points yields "3HQČåQtSURVWĜHGN" for "Peněžní prostř…",
which is all letters and digits, so a share-of-letters check passes it, and the page is indexed unsearchable.

Two independent tests, both cheap (a page takes well under a millisecond):
- common-word rate: the share of a text's words that are among the most common words (of two letters or
  more: a lone letter matches some language's word too easily) of the language that
  fits it best. Running text in any language with such a list has 20-50% of them (function words: "the",
  "de", "und", "que"); shifted letters have none.
- letter shapes: in Latin script, vowels are 30% or more of the letters of every language listed, and
  words are written lower case, Capitalised or in CAPITALS; shifted letters give few vowels (a→D, e→H) and
  case changes or digits inside words ("QtSURVW", "3HQ").
A text is implausible only when both fail, so a page of part numbers or a table of figures (few common words,
normal shapes) is never thrown away; scripts without a word list here (CJK, Arabic, Cyrillic...) are judged
by the readability share alone (ingestion.text). Pure functions, no data files: the lists are below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The most common words of each language (function words, in lower case), as any frequency list has them.
COMMON_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the of and to a in is that for it as was with be by on not he this are or his from at which but "
        "have an they you were her she there been one all we their has would when if will can more no so "
        "who may any these our its about other than into only also new such should must each per shall",
        "fr": "le la les de des du et à un une en que qui est pour dans ce cette il elle ne pas sur au aux par "
        "plus se sont avec ou son sa ses leur nous vous on être été mais comme tout tous été fait peut entre "
        "sans sous aussi dont où si même ces lors après avant chaque doit",
        "de": "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an "
        "werden aus er hat dass sie nach wird bei einer um am sind noch wie einem über einen so zum war "
        "haben nur oder aber vor zur bis mehr durch kann muss sowie gemäß sein wenn wir ihre",
        "es": "de la que el en y a los se del las un por con no una su para es al lo como más o pero sus le "
        "ha me si sin sobre este ya entre cuando todo esta ser son dos también fue había era muy desde "
        "durante cada debe según puede hasta donde ante tras",
        "it": "di e il la che in a per un del è non una le si con sono da al dei alla della lo gli più come "
        "anche ma delle nel ha questo se nella o tra sua suo essere stato dal sul ogni deve può fino",
        "pt": "de a o que e do da em um para é com não uma os no se na por mais as dos como mas ao ele das à "
        "seu sua ou quando muito nos já também só pelo pela até isso entre depois sem mesmo aos ser foi "
        "cada deve pode",
        "nl": "de het een en van in is dat op te zijn voor met die niet aan er om ook als bij door maar naar "
        "dan of uit nog worden wordt werd tot over kan moet deze dit hun zij wij wel geen meer",
        "sv": "och i att det som en på är av för med till den har de inte om ett men var så vi kan man "
        "från ska eller också vid efter under mot skall detta sin sina alla",
        "da": "og i at det en den til er som på de med han af for ikke der var mig sig men et har om vi "
        "fra skal kan eller efter hvis også ved under denne disse alle",
        "no": "og i det som en på er av for med til den har de ikke om et men var så vi kan fra skal eller "
        "også ved etter under denne disse alle må",
        "cs": "a v se na je že s z do o to i k by jako pro ve tak za jsou ale od po jak jeho jej není nebo "
        "být bylo které který která při podle před mezi již také jen tím této tento",
        "pl": "i w z na się nie do to że jest o jak a po co tak za od są przez dla jego może by był była "
        "lub oraz także które który która przy tym tego jej już ich",
        "ro": "și de la în a pe cu nu că din o un pentru se care sunt mai este ca au al ale prin sau după "
        "fost fi dar ce acest această",
        "hu": "a az és hogy nem is egy meg de van volt csak már el ki be mint még ez azt vagy ha kell "
        "szerint által között után",
        "tr": "ve bir bu da de için ile olarak olan çok daha en gibi ama kadar sonra her ya veya ise göre "
        "olduğu",
    }.items()
}
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?|\w*\d\w*")
_LATIN_LETTER = re.compile(r"[A-Za-zÀ-ÖØ-öø-ɏ]")
_VOWELS = frozenset("aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüýÿāăąēĕėęěīĭįıōŏőœūŭůűųŷ")
_HAS_DIGIT = re.compile(r"\d")

# Below these a text is implausible on each test; both must fail (see the module's doc). Measured on the
# pages of ../shared/eval/pdfs and the 10-Q filings: real text has a common-word rate of 0.15 and more
# (tables of figures less), a vowel share of 0.3 and more, odd shapes under 10%.
MIN_COMMON_RATE = 0.08
MIN_VOWEL_SHARE = 0.3
MAX_ODD_SHAPES = 0.25
# Fewer Latin words than this cannot be judged (a page number, a caption).
MIN_WORDS = 12


@dataclass(frozen=True)
class Plausibility:
    language: str  # the language whose common words fit best ('' when none fits, or not Latin script)
    words: int  # words in Latin script
    common_rate: float  # share of those words among `language`'s common words
    vowel_share: float  # vowels among Latin letters
    odd_shapes: float  # share of words with a case change or a digit inside
    plausible: bool

    @property
    def score(self) -> float:
        """Higher is more plausible: for choosing between two readings of one page (text layer, OCR)."""
        return self.common_rate + min(self.vowel_share, 0.4) - self.odd_shapes


def text_plausibility(*, text: str) -> Plausibility:
    words = [w for w in _WORD.findall(text) if _LATIN_LETTER.search(w)]
    if not words:
        return Plausibility("", 0, 0.0, 0.0, 0.0, plausible=True)
    lowered = [w.lower().replace("’", "'") for w in words]
    language, hits = max(
        ((lang, sum(1 for w in lowered if len(w) > 1 and (w in common or w.split("'")[0] in common))) for lang, common in COMMON_WORDS.items()),
        key=lambda pair: pair[1],
    )
    common_rate = hits / len(words)
    # Vowels among the letters of words without digits: codes such as "XK-2201" or "M8" are not words.
    letters = [c for w in lowered if not _HAS_DIGIT.search(w) for c in w if _LATIN_LETTER.match(c)]
    vowel_share = sum(1 for c in letters if c in _VOWELS) / max(len(letters), 1)
    odd = sum(1 for w in words if len(w) > 1 and not _HAS_DIGIT.fullmatch(w) and _is_odd(w)) / len(words)
    shapes_fail = vowel_share < MIN_VOWEL_SHARE or odd > MAX_ODD_SHAPES
    plausible = len(words) < MIN_WORDS or common_rate >= MIN_COMMON_RATE or not shapes_fail
    return Plausibility(
        language if hits else "", len(words), round(common_rate, 3), round(vowel_share, 3), round(odd, 3), plausible
    )


def _is_odd(word: str) -> bool:
    """A case change inside a word, or letters and digits mixed ('QtSURVW', '3HQ'); not 'iPhone'-like names alone."""
    if _HAS_DIGIT.search(word):
        return bool(re.search(r"[^\W\d_]", word)) and not re.fullmatch(r"\d+(?:st|nd|rd|th|er|e|º|ª|s|m|km|kg|%)?", word, re.I)
    word = word.split("'")[0].split("’")[0]
    return not (word == word.lower() or word == word.upper() or (word[0].isupper() and word[1:] == word[1:].lower()))
