"""LoRA adapters: training from approved answers (llm.lora, `manage.py lora_train`), serving them from one
4-bit base (llm/generators/hf_adapters.py), answers recording their adapter, the hallucination rate split
by adapter. All on the CPU with the tiny random Mistral of the generator tests, quantized to NF4."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from chat.models import Answer, Conversation, PassageRecord
from ingestion.models import Collection
from llm.exceptions import GeneratorUnavailable, TrainingDataInvalid
from llm.generators import ChatMessage, GenerationParams, generator_build
from llm.generators.hf_adapters import AdapterGate
from llm.lora import FeedbackExample, LoraOptions, examples_split, lora_train
from llm.prompts import PromptPassage
from tests.conftest import WorkerProcess, transformers_worker_env, wait_for
from tests.corpus import document_embedded
from tests.llm_fixtures import tiny_mistral_build

QUESTION = [ChatMessage(role="user", content="what does the travel policy say about hotels")]
GREEDY = GenerationParams(max_new_tokens=8, temperature=0)
TEXTS = [
    "hotel costs are reimbursed up to the city cap shown in the appendix",
    "receipts must be uploaded within thirty days of the end of the trip",
    "economy class is booked for flights under six hours and business class above that",
]
# A few steps at a high learning rate: enough for the tiny model to move, so effects are measurable.
FAST = LoraOptions(steps=6, batch_size=2, learning_rate=3e-2, max_new_tokens=32, gradient_checkpointing=False)


def _examples() -> list[FeedbackExample]:
    passages = tuple(PromptPassage(n + 1, "travel policy", 1, 1, t, 0.8) for n, t in enumerate(TEXTS))
    topics = ["meals", "hotels", "taxis", "flights", "receipts", "director"]
    return [
        FeedbackExample(
            question=f"what does the policy say about {topic}", passages=passages,
            answer=f"hotel costs are reimbursed up to the city cap [1] {topic}",
        )
        for topic in topics
    ]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Special tokens suppressed: answers always reach their token limit, so lengths are exact.
    return tiny_mistral_build(
        tmp_path_factory.mktemp("tiny-lora") / "model", window=1024, generation={"suppress_tokens": [0, 1, 2, 3]}
    )


@pytest.fixture(scope="module")
def adapters_dir(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    """Two adapters: 'travel' trained on approved answers, 'support' the same recipe with another seed."""
    root = tmp_path_factory.mktemp("adapters")
    results = {}
    for name, seed in (("travel", 0), ("support", 7)):
        generator: Any = generator_build(backend="transformers", model=str(tiny_model), local_files_only=True, batching="off")
        options = LoraOptions(**{**FAST.__dict__, "seed": seed})
        results[name] = lora_train(generator=generator, examples=_examples(), output=root / name, options=options)
    yield root, results


# The gate: requests grouped by adapter, in turns ------------------------------------------------------


def test_gate_runs_one_adapter_at_a_time_and_takes_turns_in_arrival_order() -> None:
    switched: list[str | None] = []
    running: dict[str | None, int] = {}
    overlap: list[tuple[str | None, ...]] = []
    lock = threading.Lock()
    gate = AdapterGate(switched.append)

    def ask(adapter: str | None, hold_s: float) -> None:
        with gate.hold(adapter):
            with lock:
                running[adapter] = running.get(adapter, 0) + 1
                active = tuple(a for a, n in running.items() if n)
                if len(active) > 1:
                    overlap.append(active)
            time.sleep(hold_s)
            with lock:
                running[adapter] -= 1

    first = [threading.Thread(target=ask, args=("a", 0.3)) for _ in range(3)]
    for thread in first:
        thread.start()
    time.sleep(0.05)
    later = [threading.Thread(target=ask, args=(name, 0.05)) for name in ("b", "a", "b", None)]
    for thread in later:
        thread.start()
        time.sleep(0.02)
    for thread in first + later:
        thread.join(timeout=10)
    assert not overlap  # never two adapters in the slot's batch at once
    # The three 'a' run together; the late 'a' waits behind the first 'b' (no overtaking), and the second
    # 'b' waits behind that 'a': arrival order decides the turns.
    assert switched == ["a", "b", "a", "b", None]
    assert gate.switches == 5


def test_gate_redoes_a_switch_that_failed() -> None:
    calls: list[str | None] = []

    def switch(adapter: str | None) -> None:
        calls.append(adapter)
        if len(calls) == 1:
            raise RuntimeError("copy failed")

    gate = AdapterGate(switch)
    with pytest.raises(RuntimeError), gate.hold("a"):
        pass
    with gate.hold("a"):
        pass
    assert calls == ["a", "a"]


# Training ----------------------------------------------------------------------------------------------


def test_split_keeps_one_of_each_and_refuses_a_single_example() -> None:
    train, held = examples_split(_examples(), held_out=0.2, seed=0)
    assert len(held) == 1 and len(train) == 5 and not set(map(id, train)) & set(map(id, held))
    with pytest.raises(TrainingDataInvalid, match="at least 2"):
        examples_split(_examples()[:1], held_out=0.2, seed=0)


@pytest.mark.slow
def test_training_writes_an_adapter_and_lowers_the_held_out_loss(adapters_dir: tuple[Path, Any]) -> None:
    root, results = adapters_dir
    result = results["travel"]
    assert {"adapter_config.json", "adapter_model.safetensors", "training.json"} <= {p.name for p in (root / "travel").iterdir()}
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    config = json.loads((root / "travel" / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], sorted(config["target_modules"])) == (8, 16, ["q_proj", "v_proj"])
    assert (result.train_examples, result.held_out_examples, result.steps) == (5, 1, 6)
    assert result.loss_after < result.loss_before  # deterministic: seeded, on the CPU
    report = json.loads((root / "travel" / "training.json").read_text())
    assert report["loss_before"] == pytest.approx(result.loss_before)


# Serving -----------------------------------------------------------------------------------------------


def _last_logits(generator: Any, adapter: str | None) -> Any:
    import torch

    ids = torch.tensor([generator.prompt_ids(QUESTION)])
    gate = generator._gate
    with gate.hold(adapter) if gate is not None else _nothing(), torch.inference_mode():
        return generator.loaded_model(input_ids=ids).logits[0, -1].float().clone()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture(scope="module")
def served(tiny_model: Path, adapters_dir: tuple[Path, Any]) -> Any:
    generator: Any = generator_build(
        backend="transformers", model=str(tiny_model), local_files_only=True, batching="off",
        adapters_dir=str(adapters_dir[0]),
    )
    generator.warm_up()
    return generator


@pytest.mark.slow
def test_adapter_logits_differ_from_the_base_and_equal_peft_s_own(
    served: Any, tiny_model: Path, adapters_dir: tuple[Path, Any]
) -> None:
    import torch
    from peft import PeftModel

    assert served.adapters == ("support", "travel")
    base = _last_logits(served, None)
    travel = _last_logits(served, "travel")
    support = _last_logits(served, "support")
    assert (travel - base).abs().max() > 1e-3 and (support - travel).abs().max() > 1e-3
    # The slot holds zeros for the base: exactly the model without adapters.
    plain: Any = generator_build(backend="transformers", model=str(tiny_model), local_files_only=True, batching="off")
    assert torch.equal(_last_logits(plain, None), base)
    # And the adapter's own numbers, as peft computes them with the adapter loaded its own way (on a model
    # that has not run yet: bitsandbytes repacks 4-bit weights for the CPU at the first forward).
    fresh: Any = generator_build(backend="transformers", model=str(tiny_model), local_files_only=True, batching="off")
    reference = PeftModel.from_pretrained(fresh.loaded_model, str(adapters_dir[0] / "travel")).eval()
    ids = torch.tensor([fresh.prompt_ids(QUESTION)])
    with torch.inference_mode():
        expected = reference(input_ids=ids).logits[0, -1].float()
    assert torch.allclose(travel, expected, atol=1e-5), (travel - expected).abs().max()
    # Switching back and forth leaves nothing behind.
    assert torch.equal(_last_logits(served, None), base) and torch.equal(_last_logits(served, "travel"), travel)


@pytest.mark.slow
def test_concurrent_questions_with_different_adapters_get_their_own_answers(served: Any) -> None:
    def ask(adapter: str | None) -> str:
        params = GenerationParams(max_new_tokens=8, temperature=0, adapter=adapter)
        return "".join(served.stream(messages=QUESTION, params=params))

    alone = {adapter: ask(adapter) for adapter in (None, "travel", "support")}
    assert len(set(alone.values())) == 3, alone  # each adapter answers differently
    asked = [None, "travel", "support"] * 3
    together: dict[int, str] = {}
    barrier = threading.Barrier(len(asked))

    def run(i: int) -> None:
        barrier.wait()
        together[i] = ask(asked[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(asked))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # One generate at a time on the CPU: exactly the answer each adapter gives alone.
    assert [together[i] for i in range(len(asked))] == [alone[a] for a in asked]


@pytest.mark.slow
def test_continuous_batching_with_adapters(tiny_model: Path, adapters_dir: tuple[Path, Any]) -> None:
    generator: Any = generator_build(
        backend="transformers", model=str(tiny_model), local_files_only=True, batching="continuous",
        adapters_dir=str(adapters_dir[0]),
    )
    generator.warm_up()
    try:
        def ask(adapter: str | None, tokens: int) -> str:
            params = GenerationParams(max_new_tokens=tokens, temperature=0, adapter=adapter)
            return "".join(generator.stream(messages=QUESTION, params=params))

        alone = {a: ask(a, 8) for a in (None, "travel", "support")}
        asked = [(a, 5 + i) for i, a in enumerate([None, "travel", "support"] * 2)]
        together: dict[int, str] = {}
        threads = [threading.Thread(target=lambda i=i: together.__setitem__(i, ask(*asked[i]))) for i in range(len(asked))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        tokenizer = generator.tokenizer
        for i, (adapter, tokens) in enumerate(asked):
            # Each stream ends at its own limit (no neighbour's tokens), and starts as that adapter's answer.
            assert len(tokenizer(together[i], add_special_tokens=False)["input_ids"]) == tokens
            assert alone[adapter].startswith(together[i].split()[0]), (adapter, together[i], alone)
        assert not generator._engine._requests
    finally:
        generator.close()


def test_unknown_adapter_and_backends_without_adapters_fail_clearly(served: Any) -> None:
    with pytest.raises(GeneratorUnavailable, match="'nope' is loaded.*loaded: support, travel"):
        served.stream(messages=QUESTION, params=GenerationParams(adapter="nope"))
    with pytest.raises(GeneratorUnavailable, match="llamacpp backend cannot serve LoRA adapter 'travel'"):
        generator_build(backend="llamacpp").stream(messages=QUESTION, params=GenerationParams(adapter="travel"))


def test_an_adapter_folder_from_another_method_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    folder = tmp_path / "weird"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "use_dora": True}))
    generator = generator_build(
        backend="transformers", model=str(tiny_model), local_files_only=True, batching="off", adapters={"weird": str(folder)}
    )
    with pytest.raises(GeneratorUnavailable, match="weird"):
        generator.warm_up()


# manage.py lora_train on answers and thumbs ------------------------------------------------------------


def _approved(collection: Collection, *, feedback: int | None, flagged: bool | None, days_ago: int = 0) -> Answer:
    document = collection.documents.first()
    assert document is not None
    chunks = list(document.chunks.order_by("ordinal"))
    conversation = Conversation.objects.create(collection=collection, title="t")
    answer = Answer.objects.create(
        conversation=conversation, question="what does the policy say about hotels", status=Answer.Status.DONE,
        text="hotel costs are reimbursed up to the city cap [1]", model_called=True, backend="transformers",
        feedback=feedback, grounding_flagged=flagged, grounding_score=0.2 if flagged else 0.9,
        passages=[
            PassageRecord(n, c.id, document.id, document.original_name, c.page_start, c.page_end, 0.8, c.text).to_json()
            for n, c in enumerate(chunks, start=1)
        ],
    )
    Answer.objects.filter(id=answer.id).update(created_at=timezone.now() - timedelta(days=days_ago))
    return answer


@pytest.mark.slow
@pytest.mark.django_db
def test_lora_train_command_learns_from_approved_unflagged_answers(
    tiny_model: Path, tmp_path: Path, settings: Any
) -> None:
    settings.COMPONENTS = {
        **settings.COMPONENTS,
        "generator": {"class": settings.LLM_BACKENDS["transformers"], "options": {"model": str(tiny_model), "local_files_only": True}},
    }
    settings.LLM_ADAPTERS_DIR = tmp_path / "adapters"
    settings.LLM_MAX_NEW_TOKENS = 32
    collection = Collection.objects.create(name="Travel")
    document_embedded(collection, "Travel Policy.pdf", TEXTS)
    for _ in range(4):
        _approved(collection, feedback=1, flagged=False)
    _approved(collection, feedback=1, flagged=True)  # the scorer doubted it
    _approved(collection, feedback=-1, flagged=False)  # thumbs down
    _approved(collection, feedback=None, flagged=False)  # no opinion
    _approved(collection, feedback=1, flagged=False, days_ago=120)  # older than --since
    out, err = StringIO(), StringIO()
    call_command(
        "lora_train", "--collection", "travel", "--since", "90d", "--steps", "3", "--batch-size", "2",
        "--learning-rate", "0.01", "--no-gradient-checkpointing", "--assign", stdout=out, stderr=err,
    )
    text = out.getvalue()
    assert "4 approved answers in travel" in text
    assert "examples: 3 trained on, 1 held out" in text
    before, after = (float(v.split()[-1]) for v in text.split("held-out loss: ")[1].splitlines()[0].split(","))
    assert before > 0 and after > 0
    folder = settings.LLM_ADAPTERS_DIR / "travel"
    assert (folder / "adapter_model.safetensors").is_file()
    assert json.loads((folder / "training.json").read_text())["train_examples"] == 3
    assert Collection.objects.get(id=collection.id).adapter == "travel"
    with pytest.raises(Exception, match="No collection with slug 'nope'"):
        call_command("lora_train", "--collection", "nope")


@pytest.mark.django_db
def test_lora_train_needs_a_transformers_base_model(settings: Any) -> None:
    settings.COMPONENTS = {**settings.COMPONENTS, "generator": {"class": settings.LLM_BACKENDS["llamacpp"], "options": {}}}
    Collection.objects.create(name="Travel")
    with pytest.raises(Exception, match="pass --model"):
        call_command("lora_train", "--collection", "travel", stdout=StringIO(), stderr=StringIO())


# The gpu worker: collections answered by their adapters -------------------------------------------------

QUEUE = "gpu-lora-test"


@pytest.fixture(scope="module")
def lora_worker(
    django_db_setup: None, django_db_blocker: Any, data_dir: Path, tiny_model: Path,
    adapters_dir: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    with django_db_blocker.unblock():
        env = transformers_worker_env(
            data_dir, model=tiny_model, batching="continuous", max_new_tokens=12,
            RAG_LLM_ADAPTERS_DIR=str(adapters_dir[0]), RAG_ANSWER_MIN_SCORE="0",
        )
    log = tmp_path_factory.mktemp("lora-worker") / "worker.log"
    worker = WorkerProcess(env, log, queues=QUEUE, name="lora", pool=("-P", "threads", "-c", "4"))
    yield worker.start()
    worker.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_collections_are_answered_by_their_adapters(lora_worker: WorkerProcess) -> None:
    from chat.tasks import generate_answer
    from retrieval.services import index_sync

    adapters = {"Travel": "travel", "Support": "support", "General": ""}
    ids: dict[str, list[int]] = {}
    for name, adapter in adapters.items():
        collection = Collection.objects.create(name=name, adapter=adapter)
        document_embedded(collection, f"{name}.pdf", TEXTS)
        index_sync(collection_id=collection.id)
        for question in ("what about hotels", "what about receipts"):
            conversation = Conversation.objects.create(collection=collection, title=question)
            ids.setdefault(name, []).append(Answer.objects.create(conversation=conversation, question=question).id)
    for answer_ids in zip(*ids.values(), strict=True):
        for answer_id in answer_ids:
            generate_answer.apply_async(args=(answer_id,), queue=QUEUE)
    everything = [i for group in ids.values() for i in group]
    wait_for(
        lambda: not Answer.objects.filter(id__in=everything).exclude(status__in=["done", "failed"]).exists(),
        timeout=240, what=f"the answers (worker log: {lora_worker.log})",
    )
    for name, adapter in adapters.items():
        for answer in Answer.objects.filter(id__in=ids[name]):
            assert answer.status == "done" and answer.model_called, answer.error
            assert answer.adapter == adapter and answer.text
    log = lora_worker.log_text()
    # One base model for every adapter (the worker's log shows event names only, not their fields).
    assert log.count("event=generator_loaded") == 1 and log.count("event=lora_slots_ready") == 1
    assert log.count("event=adapter_switched") >= 2  # at least travel and support took their turns


# The hallucination rate, split by adapter -----------------------------------------------------------


@pytest.mark.django_db
def test_metrics_and_dashboard_split_the_rate_by_adapter(admin_client: Client, settings: Any) -> None:
    settings.METRICS_TOKEN = "scrape-secret"
    collection = Collection.objects.create(name="Travel")
    conversation = Conversation.objects.create(collection=collection, title="t")
    for adapter, flags in (("", [True, True, False, False]), ("travel", [True, False, False, False])):
        for flagged in flags:
            Answer.objects.create(
                conversation=conversation, question="q", text="a", status="done", model_called=True,
                backend="transformers", adapter=adapter, grounding_score=0.1 if flagged else 0.9,
                grounding_flagged=flagged,
            )
    body = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").content.decode()
    assert 'rag_answers_total{adapter="travel",backend="transformers",collection="Travel"} 4.0' in body
    assert 'rag_answers_flagged_total{adapter="travel",backend="transformers",collection="Travel"} 1.0' in body
    assert 'rag_answers_flagged_total{adapter="",backend="transformers",collection="Travel"} 2.0' in body
    rows = admin_client.get("/grounding/data.json?days=7").json()["rows"]
    assert {(r["adapter"], r["answers"], r["flagged"]) for r in rows} == {("", 4, 2), ("travel", 4, 1)}
    page = admin_client.get("/grounding/?days=7").content.decode()
    assert "<th>Adapter</th>" in page and "<td>travel</td>" in page and "<td>base</td>" in page
    assert "transformers · travel" in page  # the chart's legend: one line per adapter
