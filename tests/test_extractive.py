"""The extractive backend: the documents' own sentence or table row that answers, cited; a refusal below the
threshold; streamed through the same prompt every backend gets. Runs the bundled MiniLM (no fakes)."""

from __future__ import annotations

import pytest

from llm.citations import citations_parse
from llm.generators import GenerationParams, NumberedPassage, generator_build
from llm.generators.extractive import ExtractiveGenerator
from llm.prompts import NOT_IN_DOCUMENTS, PromptPassage, prompt_build, prompt_parse
from tests.conftest import HANDBOOK

LEAVE = "How many days of paid leave do employees get?"
# A passage that talks about leave without the figure asked for, before the one that has it.
DISTRACTOR = (
    "Leave requests are approved by your manager in the HR portal. Parental leave is paid at full salary for "
    "24 weeks for every parent. Sick leave needs a doctor's note after three days."
)
CASH_FLOWS = (
    "Consolidated Statement of Cash Flows | 2018 | 2017 | 2016\n"
    "Net income | 4,310 4,010 3,650\n"
    "Depreciation and amortization | 1,220 1,118 990\n"
    "Purchases of property and equipment | (1,577) (1,373) (1,420)\n"
    "Dividends paid | (2,100) (1,950) (1,800)"
)
ALLOWANCES = (
    "Meal allowances apply to business trips of more than 6 hours.\n"
    "Travel allowances — Denmark | Meal: 450 DKK | Hotel: 1,600 DKK\n"
    "Travel allowances — Sweden | Meal: 520 SEK | Hotel: 1,900 SEK\n"
    "Travel allowances — Germany | Meal: 60 EUR | Hotel: 180 EUR"
)


@pytest.fixture(scope="module")
def extractive() -> ExtractiveGenerator:
    generator = generator_build(backend="extractive")
    assert isinstance(generator, ExtractiveGenerator)
    generator.warm_up()
    return generator


def _handbook() -> list[NumberedPassage]:
    return [
        NumberedPassage(1, HANDBOOK[0]),
        NumberedPassage(2, DISTRACTOR),
        NumberedPassage(3, f"{HANDBOOK[1]} {HANDBOOK[2]}"),
    ]


def test_picks_the_sentence_with_the_figure_and_cites_its_passage(extractive: ExtractiveGenerator) -> None:
    found = extractive.extract(question=LEAVE, passages=_handbook())
    lead = found.pieces[0]
    assert lead.startswith("Every full-time employee receives 27 days of paid annual leave") and "[3]" in lead
    assert found.citations[0] == 3 and "24 weeks" not in lead
    # Every sentence it says is a passage's own, and every one is cited.
    for piece in found.pieces:
        sentence, _, cite = piece.strip().rpartition(" ")
        n = int(cite.strip("[]"))
        assert sentence in " ".join(_handbook()[n - 1].text.split())
    assert citations_parse(answer=found.text, passage_count=3) == found.citations


def test_a_figure_with_the_unit_asked_a_few_words_after_it_wins(extractive: ExtractiveGenerator) -> None:
    """'5 unused leave days' answers 'how many vacation days ... carry over', not '27 days' of the sentence before."""
    found = extractive.extract(question="How many vacation days can I carry over?", passages=_handbook())
    assert found.pieces[0].startswith("Up to 5 unused leave days may be carried over")


def test_picks_the_table_row_with_its_columns(extractive: ExtractiveGenerator) -> None:
    passages = [NumberedPassage(1, DISTRACTOR), NumberedPassage(2, CASH_FLOWS)]
    found = extractive.extract(
        question="How much did the company spend on purchases of property and equipment?", passages=passages
    )
    assert found.pieces[0].rstrip() == (
        "Consolidated Statement of Cash Flows | 2018 | 2017 | 2016\n"
        "Purchases of property and equipment | (1,577) (1,373) (1,420) [2]"
    )
    assert found.citations[0] == 2


def test_picks_the_labelled_row_of_the_country_asked(extractive: ExtractiveGenerator) -> None:
    found = extractive.extract(
        question="What is the meal allowance in Sweden?", passages=[NumberedPassage(1, ALLOWANCES)]
    )
    assert (
        found.pieces[0].startswith("Travel allowances — Sweden | Meal: 520 SEK") and "[1]" in found.pieces[0]
    )


def test_refuses_when_no_sentence_answers(extractive: ExtractiveGenerator) -> None:
    found = extractive.extract(
        question="What is the melting point of tungsten carbide in kelvin?", passages=_handbook()
    )
    assert found.text == NOT_IN_DOCUMENTS and found.citations == ()
    assert found.score < 0.2  # the default threshold
    assert extractive.extract(question=LEAVE, passages=[]).text == NOT_IN_DOCUMENTS


def test_streams_the_answer_to_the_grounded_prompt_in_pieces(extractive: ExtractiveGenerator) -> None:
    passages = [
        PromptPassage(
            chunk_id=i,
            document_title="Employee Handbook.pdf",
            page_start=i,
            page_end=i,
            text=p.text,
            score=0.5,
        )
        for i, p in enumerate(_handbook(), start=1)
    ]
    built = prompt_build(question=LEAVE, passages=passages, generator=extractive, max_new_tokens=384)
    parsed = prompt_parse(built.messages)
    assert parsed is not None and parsed.question == LEAVE
    assert [(p.n, p.text) for p in parsed.passages] == [(p.n, p.text) for p in _handbook()]
    pieces = list(extractive.stream(messages=built.messages, params=GenerationParams(max_new_tokens=384)))
    assert len(pieces) > 5
    assert "".join(pieces).strip() == extractive.extract(question=LEAVE, passages=_handbook()).text
    assert "27 days" in "".join(pieces)
    # The token limit cuts the stream as any backend's.
    short = "".join(extractive.stream(messages=built.messages, params=GenerationParams(max_new_tokens=4)))
    assert short.split() == ["Every", "full-time"]  # 1 + 3 tokens ("full", "-", "time")
    assert extractive.count_tokens(built.messages) > 50


def test_a_prompt_without_passages_gets_the_refusal_and_adapters_are_refused(
    extractive: ExtractiveGenerator,
) -> None:
    from llm.exceptions import GeneratorUnavailable
    from llm.generators import ChatMessage

    rewrite = [
        ChatMessage("user", "Conversation: ...\n\nLast question: and in 2023?\n\nStandalone search query:")
    ]
    assert "".join(extractive.stream(messages=rewrite, params=GenerationParams())).strip() == NOT_IN_DOCUMENTS
    with pytest.raises(GeneratorUnavailable, match="extractive backend cannot serve LoRA adapter"):
        extractive.stream(messages=rewrite, params=GenerationParams(adapter="travel"))


def test_the_demo_handbook_answers_the_readme_question_with_its_figure(
    extractive: ExtractiveGenerator,
) -> None:
    """The README's first question over the demo handbook's own pages (which also name 24 weeks of paid
    parental leave): the figure it gets is the 27 days of annual leave, cited to page 2."""
    import pypdfium2 as pdfium

    from tests.conftest import ROOT

    pdf = pdfium.PdfDocument(ROOT / "demo" / "Northwind Employee Handbook.pdf")
    pages = [NumberedPassage(n, pdf[n - 1].get_textpage().get_text_range()) for n in range(1, len(pdf) + 1)]
    found = extractive.extract(question=LEAVE, passages=pages)
    assert "27 days of paid annual leave" in found.pieces[0] and found.pieces[0].rstrip().endswith("[2]")
    assert "24 weeks" not in found.text.split("[2]")[0]


def test_a_heading_line_is_not_shown_glued_to_the_sentence_under_it(extractive: ExtractiveGenerator) -> None:
    """PDF text has headings on lines of their own, without a full stop: the answer is the sentence alone
    ('Paid leave Every employee...' read as one sentence before), while a wrapped line stays in its sentence."""
    text = (
        "Working hours are 37 hours a week.\nPaid leave\nEvery full-time employee receives 27 days of paid annual "
        "leave per calendar\nyear, plus\nDanish public holidays.\nSick leave\nTell your manager on the first day."
    )
    found = extractive.extract(question=LEAVE, passages=[NumberedPassage(1, text)])
    assert found.pieces[0].startswith("Every full-time employee receives 27 days"), found.pieces
    assert "plus Danish public holidays." in found.pieces[0] and "Paid leave" not in found.text
