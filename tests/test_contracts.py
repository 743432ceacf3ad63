"""One contract per kind of component, run against every implementation the settings can name (as Django's
session backends share one test mixin): embedder, generator, grounding scorer, parser, OCR engine.

A new backend or file type joins by adding its builder below; the `*_are_all_covered` tests fail until it does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.conf import settings

from ingestion.embedding import Embedder, SentenceTransformerEmbedder
from ingestion.exceptions import DocumentRejected
from ingestion.ocr import RapidOcrEngine, TesseractOcrEngine
from ingestion.parsers import Parser, parsers
from llm.generators import ChatMessage, GenerationParams, Generator, generator_build
from llm.grounding import GroundingResult, GroundingScorer, scorer_build
from ragsite.components import component_build
from tests import doc_factory, pdf_factory
from tests.llm_fixtures import llama_server, tiny_mistral_build

# --- embedder -------------------------------------------------------------------------------------------

EMBEDDERS: dict[str, Callable[[], Embedder]] = {
    "float32": lambda: SentenceTransformerEmbedder(),
    "int8": lambda: SentenceTransformerEmbedder(quantize="int8"),
}


@pytest.fixture(scope="module", params=sorted(EMBEDDERS))
def embedder(request: pytest.FixtureRequest) -> Embedder:
    return EMBEDDERS[request.param]()


def test_the_configured_embedder_class_is_covered() -> None:
    assert settings.COMPONENTS["embedder"]["class"] == "ingestion.embedding.SentenceTransformerEmbedder"


class TestEmbedderContract:
    def test_warm_up_is_idempotent_and_sets_the_shape(self, embedder: Embedder) -> None:
        embedder.warm_up()
        embedder.warm_up()
        assert embedder.dimension > 0 and embedder.max_tokens > 0 and embedder.name

    def test_vectors_are_normalised_one_per_text_in_order(self, embedder: Embedder) -> None:
        texts = ["Paid leave is 27 days a year.", "The meal allowance is 450 kroner.", "Annual leave: 27 days."]
        vectors = embedder.embed(texts, batch_size=2)
        assert vectors.shape == (3, embedder.dimension) and vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
        assert float(vectors[0] @ vectors[2]) > float(vectors[0] @ vectors[1])

    def test_progress_is_reported_and_tokens_are_counted(self, embedder: Embedder) -> None:
        seen: list[tuple[int, int]] = []
        embedder.embed(["a", "b", "c"], batch_size=2, progress=lambda done, total: seen.append((done, total)))
        assert seen[-1] == (3, 3)
        assert embedder.token_count("one two three four") > embedder.token_count("one") > 0


# --- generator ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_mistral_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_mistral_build(tmp_path_factory.mktemp("contract-mistral"), generation={"suppress_tokens": [0, 1, 2, 3]})


@pytest.fixture(scope="module")
def openai_url() -> Iterator[str]:
    with llama_server() as url:
        yield url


GENERATORS: dict[str, Callable[[pytest.FixtureRequest], Generator]] = {
    "extractive": lambda request: generator_build(backend="extractive"),
    "llamacpp": lambda request: generator_build(backend="llamacpp", n_ctx=1024),
    "transformers": lambda request: generator_build(
        backend="transformers", model=str(request.getfixturevalue("tiny_mistral_dir")), local_files_only=True
    ),
    "openai": lambda request: generator_build(
        backend="openai", base_url=request.getfixturevalue("openai_url"), model="smollm2"
    ),
}


def test_every_backend_name_is_covered() -> None:
    assert set(GENERATORS) == set(settings.LLM_BACKENDS)


@pytest.fixture(scope="module", params=sorted(GENERATORS))
def generator(request: pytest.FixtureRequest) -> Iterator[Generator]:
    built = GENERATORS[request.param](request)
    yield built
    close = getattr(built, "close", None)
    if callable(close):
        close()


QUESTION = [ChatMessage("user", "What is the daily meal allowance on business trips?")]


@pytest.mark.slow
class TestGeneratorContract:
    def test_describes_itself_and_warms_up_once(self, generator: Generator) -> None:
        assert isinstance(generator, Generator)
        generator.warm_up()
        generator.warm_up()
        assert generator.backend in settings.LLM_BACKENDS
        assert generator.model_name and generator.quantization and generator.context_window > 0

    def test_counts_the_prompt_as_it_will_feed_it(self, generator: Generator) -> None:
        longer = [ChatMessage("user", QUESTION[0].content + " Answer in one sentence, citing the passage.")]
        assert generator.count_tokens(longer) > generator.count_tokens(QUESTION) > 0

    def test_streams_text_within_the_token_limit(self, generator: Generator) -> None:
        pieces = list(generator.stream(messages=QUESTION, params=GenerationParams(max_new_tokens=8, temperature=0.0)))
        assert pieces and all(isinstance(p, str) for p in pieces)
        # Its text, counted by the generator: decoded pieces may re-tokenize a little differently, and a remote
        # server without a named tokenizer is counted by an estimate that errs high. A stream that ran past
        # its limit (to 32 here) would still be far over this.
        text_tokens = generator.count_tokens([ChatMessage("user", "".join(pieces))]) - generator.count_tokens(
            [ChatMessage("user", "")]
        )
        assert 0 < text_tokens <= 2 * 8

    def test_closing_a_stream_early_leaves_it_usable(self, generator: Generator) -> None:
        params = GenerationParams(max_new_tokens=32, temperature=0.0)
        first = generator.stream(messages=QUESTION, params=params)
        next(first)
        first.close()  # type: ignore[attr-defined]
        assert list(generator.stream(messages=QUESTION, params=GenerationParams(max_new_tokens=4, temperature=0.0)))


# --- grounding scorer -----------------------------------------------------------------------------------

SCORERS: dict[str, Callable[[], GroundingScorer]] = {
    "lexical-embedding": lambda: scorer_build(name="lexical-embedding"),
    "llm-judge": lambda: scorer_build(name="llm-judge", generator=generator_build(backend="llamacpp", n_ctx=2048)),
}


def test_every_scorer_name_is_covered() -> None:
    assert set(SCORERS) == set(settings.GROUNDING_SCORERS)


@pytest.fixture(scope="module", params=sorted(SCORERS))
def scorer(request: pytest.FixtureRequest) -> GroundingScorer:
    return SCORERS[request.param]()


PASSAGES = ["Every full-time employee receives 27 days of paid annual leave per calendar year."]
ANSWER = "Employees get 27 days of paid leave [1]. The office has a rooftop pool."


@pytest.mark.slow
class TestScorerContract:
    def test_scores_sentences_with_offsets_into_the_answer(self, scorer: GroundingScorer) -> None:
        scorer.warm_up()
        scorer.warm_up()
        result = scorer.score(answer=ANSWER, passages=PASSAGES, question="How many days of leave?")
        assert isinstance(result, GroundingResult) and 0.0 <= result.score <= 1.0
        if result.status == "scored":
            assert result.flagged == (result.score < result.threshold)
        else:  # no verdict: never flagged, never passed as grounded, and the reason is given
            assert result.status == "unscored" and not result.flagged and result.reason
        assert result.scorer == scorer.name and result.version == scorer.version
        assert [ANSWER[s.start : s.end] for s in result.sentences] == [s.text for s in result.sentences]
        assert len(result.sentences) == 2

    def test_an_empty_answer_has_no_sentences(self, scorer: GroundingScorer) -> None:
        result = scorer.score(answer="", passages=PASSAGES)
        assert result.sentences == () and 0.0 <= result.score <= 1.0


# --- parser ---------------------------------------------------------------------------------------------

# A file of the parser's type holding KNOWN_TEXT, made in the test.
KNOWN_TEXT = "Core working hours are 10:00 to 15:00 Central European Time."
PARSER_SAMPLES: dict[str, Callable[[Path], Path]] = {
    "ingestion.parsers.pdf.PdfParser": lambda folder: pdf_factory.make_text_pdf(folder / "sample.pdf", [KNOWN_TEXT]),
    "ingestion.parsers.docx.DocxParser": lambda folder: doc_factory.make_docx(folder / "s.docx", [("Hours", [KNOWN_TEXT])]),
    "ingestion.parsers.html.HtmlParser": lambda folder: doc_factory.make_html(folder / "s.html", f"<h1>Hours</h1><p>{KNOWN_TEXT}</p>"),
    "ingestion.parsers.markdown.MarkdownParser": lambda folder: doc_factory.make_text(folder / "s.md", f"# Hours\n\n{KNOWN_TEXT}\n"),
    "ingestion.parsers.plaintext.PlainTextParser": lambda folder: doc_factory.make_text(
        folder / "s.txt", KNOWN_TEXT, encoding="utf-16"
    ),
}


def test_every_configured_parser_is_covered() -> None:
    assert {spec["class"] for spec in settings.PARSERS} == set(PARSER_SAMPLES)


@pytest.fixture(params=[spec["class"] for spec in settings.PARSERS])
def parser_and_sample(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Parser, Path]:
    spec = next(s for s in settings.PARSERS if s["class"] == request.param)
    return component_build(spec["class"], **spec.get("options", {})), PARSER_SAMPLES[request.param](tmp_path)


class TestParserContract:
    def test_reads_its_sample_into_numbered_units(self, parser_and_sample: tuple[Parser, Path]) -> None:
        parser, sample = parser_and_sample
        assert isinstance(parser, Parser) and parser.media_types and parser.label
        assert parser.extensions and all(e.startswith(".") for e in parser.extensions)
        parser.warm_up()
        parser.warm_up()
        seen: list[tuple[int, int]] = []
        parsed = parser.parse(path=sample, progress=lambda done, total: seen.append((done, total)))
        assert parsed.unit in ("page", "section") and seen and seen[-1][0] == seen[-1][1]
        assert [u.number for u in parsed.units] == list(range(1, len(parsed.units) + 1))
        assert KNOWN_TEXT in " ".join(" ".join(u.text.split()) for u in parsed.units)
        # Units are pages, or sections that each have a title for citations to name.
        assert parsed.unit == "page" or all(u.title for u in parsed.units)

    def test_bytes_of_another_kind_are_rejected_with_a_reason(self, parser_and_sample: tuple[Parser, Path]) -> None:
        parser, sample = parser_and_sample
        sample.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
        with pytest.raises(DocumentRejected) as caught:
            parser.parse(path=sample)
        assert caught.value.code and str(caught.value)

    def test_the_loader_builds_one_of_each(self) -> None:
        first, second = parsers(), parsers()
        assert len(first) == len(settings.PARSERS) and all(a is b for a, b in zip(first, second, strict=True))


# --- OCR engine -----------------------------------------------------------------------------------------

OCR_ENGINES: dict[str, Callable[[], Any]] = {
    "ingestion.ocr.RapidOcrEngine": lambda: RapidOcrEngine(),
    "ingestion.ocr.TesseractOcrEngine": lambda: TesseractOcrEngine(),
    # A machine without the tesseract packages: the same engine, falling back to RapidOCR.
    "ingestion.ocr.TesseractOcrEngine (fallback)": lambda: TesseractOcrEngine(languages="xxx"),
}


def test_the_configured_ocr_engine_is_covered() -> None:
    assert settings.COMPONENTS["ocr"]["class"] in OCR_ENGINES


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(OCR_ENGINES))
def test_ocr_engine_contract(path: str) -> None:
    engine = OCR_ENGINES[path]()
    engine.warm_up()
    engine.warm_up()
    blank = np.full((200, 400), 255, dtype=np.uint8)
    assert engine.read(image=blank).text == "" and engine.read(image=blank).lines == ()
    image = np.array(pdf_factory.text_image(["Invoice total 450"]).convert("L"))
    reading = engine.read(image=image)
    assert "450" in reading.text and [line.text for line in reading.lines] == [reading.text]
    # Each line's box is in pixels of the image it was given (the text is drawn from 56 px in, see text_image).
    height, width = image.shape
    (line,) = reading.lines
    assert 0 <= line.x0 < line.x1 <= width and 0 <= line.y0 < line.y1 <= height and 30 < line.x0 < 90
