"""Grounding scorer: splitter offsets, lexical evidence, the default scorer, the judge, evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from llm.generators.base import ChatMessage, GenerationParams
from llm.grounding import (
    GroundingError,
    GroundingResult,
    SentenceScore,
    scorer_build,
    scorer_get,
)
from llm.grounding.embedding import MiniLMEmbedder
from llm.grounding.evaluation import grounding_evaluate, metrics_compute, ragtruth_load
from llm.grounding.judge import LlmJudgeScorer, verdicts_parse
from llm.grounding.lexical import evidence_collect, vocabulary_build
from llm.grounding.model import WEIGHTS_DIR
from llm.grounding.splitting import sentences_split
from tests.components import component_configured

REPO = Path(__file__).resolve().parents[1]
RAGTRUTH_QA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "eval" / "ragtruth" / "ragtruth_qa_dev.jsonl"
)

APPLE_PASSAGES = [
    "Apple reported quarterly revenue of $81.8 billion, down 1 percent year over year. "
    "Services revenue reached an all-time high of $21.2 billion. "
    "The board declared a cash dividend of $0.24 per share.",
    "Tim Cook, Apple's CEO, said the installed base of active devices reached an all-time high "
    "in all geographic segments. Luca Maestri is the chief financial officer.",
    "iPhone revenue was $39.7 billion for the quarter, compared with $40.7 billion a year earlier.",
]
APPLE_QUESTION = "What revenue did Apple report for the quarter?"


# --- splitting -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "The U.S. economy grew 3.5% in 2023. Revenue was $81.8 billion, e.g. from iPhones. Dr. Smith agreed!",
        "To grill:\n\n1. Dump coals.\n2. Spread them, i.e. evenly. Then wait.\n- bullet one\n* bullet two.\n8.",
        'He said "Stop." Then he left.  J. K. Rowling wrote it. Prices rose (by 5%). It ended... Or not.',
        "  Leading spaces.\r\nWindows line.\r\n\r\n• Unicode bullet — with a dash.",
        "Version 2.0.1 shipped on Jan. 5 at 10 a.m. and cost $1,000.50 in total.",
        "No. See No. 5 and Fig. 3. Apple Inc. The company grew, etc. Then it shrank.",
        "",
    ],
)
def test_sentences_split_offsets_are_exact(text: str) -> None:
    spans = sentences_split(text=text)
    for span in spans:
        assert text[span.start : span.end] == span.text
        assert span.text == span.text.strip() and span.text
    assert [s.start for s in spans] == sorted(s.start for s in spans)


def test_sentences_split_keeps_abbreviations_decimals_and_splits_bullets() -> None:
    text = "The U.S. economy grew 3.5% in 2023, e.g. in retail. Next sentence.\n1. First step.\n- Second step"
    assert [s.text for s in sentences_split(text=text)] == [
        "The U.S. economy grew 3.5% in 2023, e.g. in retail.",
        "Next sentence.",
        "First step.",
        "Second step",
    ]


def test_sentences_split_passage_mode_joins_hard_wrapped_lines() -> None:
    text = "A sentence wrapped\nacross lines. Another one.\n\nNew paragraph."
    assert [s.text for s in sentences_split(text=text, by_line=False)] == [
        "A sentence wrapped\nacross lines.",
        "Another one.",
        "New paragraph.",
    ]


# --- lexical evidence ------------------------------------------------------------------------------


def test_evidence_normalises_number_formats_plurals_and_finds_invented_ones() -> None:
    vocab = vocabulary_build(texts=["They sold 1,000 units and 3 trucks for $2.5 billion."])
    same = evidence_collect(text="They sold 1000 unit and three truck for $2,500 million.", vocab=vocab)
    assert same.unknown == ()
    also_same = evidence_collect(text="About 1k units were sold.", vocab=vocab)
    assert also_same.unknown_numbers == 0
    invented = evidence_collect(text="They sold 1,200 units to Contoso.", vocab=vocab)
    assert [t.surface for t in invented.unknown] == ["1,200", "Contoso"]
    assert invented.unknown_numbers == 1 and invented.unknown_names == 1


# --- the default scorer ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scorer():
    built = scorer_build(name="lexical-embedding")
    built.warm_up()
    built.warm_up()  # idempotent
    return built


@pytest.mark.slow
def test_supported_paraphrase_is_grounded(scorer) -> None:
    answer = (
        "Apple's quarterly revenue was $81.8 billion, a decline of 1 percent from the previous year. "
        "Services revenue hit an all-time high of $21.2 billion."
    )
    result = scorer.score(answer=answer, passages=APPLE_PASSAGES, question=APPLE_QUESTION)
    assert isinstance(result, GroundingResult)
    assert not result.flagged, result
    assert result.unsupported == ()
    assert 0.0 <= result.score <= 1.0 and result.score >= result.threshold


@pytest.mark.slow
def test_invented_number_is_flagged_and_located(scorer) -> None:
    answer = (
        "Apple reported quarterly revenue of $97.3 billion. "
        "Services revenue reached an all-time high of $21.2 billion."
    )
    result = scorer.score(answer=answer, passages=APPLE_PASSAGES, question=APPLE_QUESTION)
    assert result.flagged
    assert len(result.unsupported) == 1
    bad = result.unsupported[0]
    assert "97.3" in bad.text and answer[bad.start : bad.end] == bad.text
    assert all(s.supported for s in result.sentences if "97.3" not in s.text)


@pytest.mark.slow
def test_invented_name_is_flagged_and_located(scorer) -> None:
    answer = "Apple reported quarterly revenue of $81.8 billion, according to CEO Satya Nadella."
    result = scorer.score(answer=answer, passages=APPLE_PASSAGES, question=APPLE_QUESTION)
    assert result.flagged
    assert any("Satya Nadella" in s.text for s in result.unsupported)


@pytest.mark.slow
def test_refusal_is_not_flagged(scorer) -> None:
    answer = "The passages do not contain information about Apple's revenue in 2031."
    result = scorer.score(
        answer=answer, passages=APPLE_PASSAGES, question="What was Apple's revenue in 2031?"
    )
    assert not result.flagged, result


@pytest.mark.slow
def test_refusal_naming_an_unknown_year_is_not_flagged(scorer) -> None:
    answer = "The passages do not give Apple's revenue for 2031; they only cover the latest quarter."
    result = scorer.score(answer=answer, passages=APPLE_PASSAGES, question="How is Apple doing?")
    assert not result.flagged, result


@pytest.mark.slow
def test_empty_answer_and_no_passages_do_not_crash(scorer) -> None:
    assert not scorer.score(answer="", passages=APPLE_PASSAGES).flagged
    result = scorer.score(answer="Revenue was $97.3 billion.", passages=[])
    assert result.flagged


@pytest.mark.slow
def test_result_to_json_round_trips_through_json(scorer) -> None:
    result = scorer.score(answer="Revenue was $97.3 billion.", passages=APPLE_PASSAGES)
    data = json.loads(json.dumps(result.to_json()))
    assert data["scorer"] == "lexical-embedding" and data["version"] == result.version
    assert data["flagged"] is True and data["sentences"][0]["text"] == "Revenue was $97.3 billion."


def test_weights_for_other_features_are_refused(tmp_path: Path) -> None:
    data = json.loads((WEIGHTS_DIR / "lexical_embedding.json").read_text())
    data["sentence"]["names"] = [*data["sentence"]["names"][:-1], "renamed"]
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data))
    with pytest.raises(GroundingError, match="retrain"):
        scorer_build(name="lexical-embedding", weights_path=path)
    with pytest.raises(GroundingError, match="cannot read grounding weights"):
        scorer_build(name="lexical-embedding", weights_path=tmp_path / "missing.json")


@pytest.mark.slow
def test_default_scorer_needs_no_torch() -> None:
    """Scoring must not drag torch into a web process: the default embedder is numpy-only."""
    code = (
        "import sys; from llm.grounding import scorer_build;"
        "s = scorer_build(name='lexical-embedding');"
        "s.score(answer='Revenue was $5 billion.', passages=['Revenue was $5 billion.']);"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_minilm_embedder_option_embeds_and_caches() -> None:
    embedder = MiniLMEmbedder(cache_size=2)
    embedder.warm_up()
    embedder.warm_up()
    vectors = embedder.embed(["Revenue grew.", "Sales increased.", "The cat sat on a mat."])
    assert vectors.shape == (3, 384)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2])
    again = embedder.embed(["Revenue grew."])
    assert abs(float(again[0] @ vectors[0]) - 1.0) < 1e-5


def test_threshold_override_and_bad_names() -> None:
    assert scorer_build(name="lexical-embedding", threshold=0.0).threshold == 0.0  # type: ignore[attr-defined]
    with pytest.raises(GroundingError, match="Unknown grounding scorer 'nope'"):
        scorer_build(name="nope")
    with pytest.raises(GroundingError, match="colour.*RAG_GROUNDING_OPTIONS"):
        scorer_build(name="lexical-embedding", colour="blue")


def test_scorer_get_reads_settings_and_is_one_per_process() -> None:
    from django.conf import settings

    with component_configured("scorer", settings.GROUNDING_SCORERS["llm-judge"], threshold=0.5):
        seen = []
        threads = [threading.Thread(target=lambda: seen.append(scorer_get())) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({id(s) for s in seen}) == 1
        assert seen[0].name == "llm-judge" and seen[0].threshold == 0.5  # type: ignore[attr-defined]


# --- llm-judge -------------------------------------------------------------------------------------


class FakeGenerator:
    """Replies with a fixed text, streamed in small pieces, and records what it was asked."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.calls: list[tuple[Sequence[ChatMessage], GenerationParams]] = []

    def stream(self, *, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        self.calls.append((messages, params))
        yield from (self.reply[i : i + 5] for i in range(0, len(self.reply), 5))


def test_llm_judge_uses_generator_verdicts() -> None:
    fake = FakeGenerator("1: SUPPORTED\n2: UNSUPPORTED\n")
    judge = scorer_build(name="llm-judge", generator=fake)
    answer = "Revenue was $81.8 billion. Tim Cook founded Apple in 1962."
    result = judge.score(answer=answer, passages=APPLE_PASSAGES, question="q?")
    assert result.flagged and result.score == 0.5
    assert [s.supported for s in result.sentences] == [True, False]
    assert "1962" in result.unsupported[0].text
    messages, params = fake.calls[0]
    assert [m.role for m in messages] == ["system", "user"]
    assert (
        "$81.8 billion" in messages[-1].content
        and "2. Tim Cook founded Apple in 1962." in messages[-1].content
    )
    assert params.temperature == 0.0


def test_llm_judge_garbled_reply_is_unscored_neither_grounded_nor_flagged() -> None:
    judge = LlmJudgeScorer(generator=FakeGenerator("I cannot comply."))
    result = judge.score(answer="One. Two.", passages=["p"])
    assert result.status == "unscored" and not result.flagged and "0 of 2" in result.reason
    assert result.unsupported == () and not any(s.judged for s in result.sentences)


@pytest.mark.parametrize(
    ("reply", "threshold", "status", "flagged", "score"),
    [
        ("1: SUPPORTED\n2: SUPPORTED\n3: SUPPORTED", 1.0, "scored", False, 1.0),
        # One sentence unjudged: it could go either way at the default threshold, so nothing is decided.
        ("1: SUPPORTED\n2: SUPPORTED", 1.0, "unscored", False, 2 / 3),
        # One sentence judged unsupported decides it whatever the others would have been.
        ("2: UNSUPPORTED", 1.0, "scored", True, 0.0),
        # Two of three supported is enough at 0.5 even if the third were not.
        ("1: SUPPORTED\n3: SUPPORTED", 0.5, "scored", False, 2 / 3),
    ],
)
def test_llm_judge_decides_only_what_its_verdicts_decide(
    reply: str, threshold: float, status: str, flagged: bool, score: float
) -> None:
    judge = LlmJudgeScorer(generator=FakeGenerator(reply), threshold=threshold)
    result = judge.score(answer="One is here. Two is there. Three is everywhere.", passages=["p"])
    assert (result.status, result.flagged) == (status, flagged)
    assert result.score == pytest.approx(score)


def test_verdicts_parse_ignores_out_of_range_and_duplicates() -> None:
    text = "1: SUPPORTED\n2 - not supported\n2: SUPPORTED\n7: UNSUPPORTED\n**3**: Unsupported"
    assert verdicts_parse(text=text, count=3) == {1: True, 2: False, 3: False}


def test_llm_judge_rejects_object_without_stream() -> None:
    with pytest.raises(GroundingError, match="stream"):
        scorer_build(name="llm-judge", generator=object())


# --- evaluation ------------------------------------------------------------------------------------


def test_metrics_compute_hand_computed() -> None:
    truth = [True, True, True, False, False, False, False, True]
    predicted = [True, True, False, True, False, False, False, False]
    m = metrics_compute(truth=truth, predicted=predicted)
    # tp=2 fp=1 fn=2 tn=3: P=2/3, R=1/2, F1=2*2/(2*2+1+2)=4/7, BAcc=(1/2 + 3/4)/2=5/8
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(0.5)
    assert m.f1 == pytest.approx(4 / 7)
    assert m.balanced_accuracy == pytest.approx(0.625)
    assert (m.n, m.positives) == (8, 4)
    empty = metrics_compute(truth=[False, False], predicted=[False, False])
    assert (empty.precision, empty.recall, empty.f1, empty.balanced_accuracy) == (0.0, 0.0, 0.0, 0.5)
    with pytest.raises(ValueError, match="truth has 1"):
        metrics_compute(truth=[True], predicted=[])


def _write_ragtruth(path: Path) -> None:
    rows = [
        {
            "source_id": 7,
            "source": {
                "question": "How tall?",
                "passages": "passage 1:It is 10 m tall.\n\npassage 2:Built in 1900.",
            },
            "responses": [
                {"response": "It is 10 m tall.", "model": "m-a", "labels": []},
                {
                    "response": "It is 12 m tall.",
                    "model": "m-b",
                    "labels": [{"start": 6, "end": 10, "text": "12 m", "label_type": "Evident Conflict"}],
                },
            ],
        },
        {
            "source_id": 8,
            "source": "A summary source.",
            "responses": [{"response": "A summary.", "model": "m-a", "labels": []}],
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")


def test_ragtruth_load_small_file(tmp_path: Path) -> None:
    path = tmp_path / "rt.jsonl"
    _write_ragtruth(path)
    items = ragtruth_load(path=path)
    assert len(items) == 3
    first, second, third = items
    assert first.question == "How tall?" and first.passages == ("It is 10 m tall.", "Built in 1900.")
    assert (first.task, first.model, first.hallucinated) == ("qa", "m-a", False)
    assert second.hallucinated and second.labels[0].text == "12 m" == second.response[6:10]
    assert third.task == "summary" and third.passages == ("A summary source.",)


def test_ragtruth_load_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"source_id": 1}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        ragtruth_load(path=path)


class _ConstantScorer:
    name = "constant"
    version = "0"

    def __init__(self, flag: bool) -> None:
        self.flag = flag

    def warm_up(self) -> None:
        pass

    def score(self, *, answer, passages, question=""):
        return GroundingResult(
            0.0 if self.flag else 1.0,
            self.flag,
            0.5,
            self.name,
            self.version,
            (SentenceScore(0, 1, "x", 1.0, True),),
        )


def test_grounding_evaluate_reports_per_model_and_latency(tmp_path: Path) -> None:
    path = tmp_path / "rt.jsonl"
    _write_ragtruth(path)
    report = grounding_evaluate(scorer=_ConstantScorer(True), items=ragtruth_load(path=path))
    assert report.overall.recall == 1.0 and report.overall.precision == pytest.approx(1 / 3)
    assert set(report.per_model) == {"m-a", "m-b"} and report.per_model["m-b"].f1 == 1.0
    assert report.median_ms >= 0 and report.p95_ms >= report.median_ms
    text = report.to_text()
    assert "overall" in text and "m-b" in text and "median" in text


@pytest.mark.eval
@pytest.mark.slow
@pytest.mark.skipif(not RAGTRUTH_QA.exists(), reason=f"RAGTruth not found at {RAGTRUTH_QA}")
def test_real_ragtruth_unseen_qa_beats_flag_everything() -> None:
    """Weights trained without any QA response (summary task only), so every QA answer is unseen."""
    scorer = scorer_build(name="lexical-embedding", weights_path=WEIGHTS_DIR / "lexical_embedding.no_qa.json")
    items = ragtruth_load(path=RAGTRUTH_QA)[::3]  # every third response: 135 of 405, all six models
    report = grounding_evaluate(scorer=scorer, items=items)
    flag_all = metrics_compute(truth=[i.hallucinated for i in items], predicted=[True] * len(items))
    assert report.overall.f1 > flag_all.f1 + 0.08, report.to_text()
    assert report.overall.balanced_accuracy > 0.65, report.to_text()


@pytest.mark.eval
@pytest.mark.slow
@pytest.mark.skipif(not RAGTRUTH_QA.exists(), reason=f"RAGTruth not found at {RAGTRUTH_QA}")
def test_real_ragtruth_shipped_weights_and_latency(scorer) -> None:
    """The shipped weights saw these answers in training: a regression check, not the reported figure."""
    items = ragtruth_load(path=RAGTRUTH_QA)[1::3]
    report = grounding_evaluate(scorer=scorer, items=items)
    flag_all = metrics_compute(truth=[i.hallucinated for i in items], predicted=[True] * len(items))
    assert report.overall.f1 > flag_all.f1 + 0.1, report.to_text()
    # The budget is 50 ms per answer on 2 cores; allow for a busy CI machine.
    assert report.median_ms < 50, report.to_text()
