"""The transformers GPU worker as deployed: one Celery process, a threads pool, continuous batching.

Runs on the CPU with a tiny random-weight Mistral quantized to NF4 (the same code path as the 4-bit
Mistral-7B on a GPU, minus CUDA graphs). Its questions go to a queue of their own, so that the session's
llama.cpp worker, which consumes `gpu`, cannot take them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from chat.models import Answer, Conversation
from chat.tasks import generate_answer
from ingestion.models import Collection, Document
from ingestion.services import document_upload
from tests.conftest import HANDBOOK, WorkerProcess, transformers_worker_env, wait_for
from tests.grants import SYSTEM
from tests.llm_fixtures import tiny_mistral_build
from tests.pdf_factory import make_text_pdf

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUEUE = "gpu-batching-test"
THREADS = 4


@pytest.fixture(scope="module")
def batching_worker(
    django_db_setup: None, django_db_blocker: Any, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    model = tiny_mistral_build(tmp_path_factory.mktemp("tiny") / "model", window=2048)
    with django_db_blocker.unblock():
        env = transformers_worker_env(data_dir, model=model, batching="continuous", max_new_tokens=24)
    log = tmp_path_factory.mktemp("batching-worker") / "worker.log"
    worker = WorkerProcess(env, log, queues=QUEUE, name="batching", pool=("-P", "threads", "-c", str(THREADS)))
    yield worker.start()
    worker.stop()


def test_threads_pool_answers_concurrent_questions_in_one_batch(
    celery_worker_process: WorkerProcess, batching_worker: WorkerProcess, tmp_path: Path
) -> None:
    collection = Collection.objects.create(name="Handbook")
    pdf = make_text_pdf(tmp_path / "handbook.pdf", HANDBOOK)
    document_upload(collection=collection, upload=SimpleUploadedFile("Handbook.pdf", pdf.read_bytes()), actor=SYSTEM)
    wait_for(
        lambda: Document.objects.filter(collection=collection, status=Document.Status.READY).exists(),
        timeout=180,
        what="the handbook to be indexed",
    )
    questions = [
        "How many days of paid annual leave?",
        "What is the daily meal allowance on business trips?",
        "What are the core working hours?",
        "How many unused leave days may be carried over?",
        "How much is the meal allowance in Danish kroner?",
        "How many days of paid annual leave does a full-time employee receive?",
    ]
    ids = []
    for question in questions:
        conversation = Conversation.objects.create(collection=collection, title=question)
        ids.append(Answer.objects.create(conversation=conversation, question=question).id)
    for answer_id in ids:
        generate_answer.apply_async(args=(answer_id,), queue=QUEUE)

    answers = wait_for(
        lambda: (
            list(Answer.objects.filter(id__in=ids, status=Answer.Status.DONE))
            if not Answer.objects.filter(id__in=ids).exclude(status=Answer.Status.DONE).exists()
            else None
        ),
        timeout=300,
        what=f"all answers to be done (worker log: {batching_worker.log})",
    )
    assert len(answers) == len(questions)
    for answer in answers:
        assert answer.model_called and answer.backend == "transformers" and answer.text, answer.error
        assert answer.quantization.startswith("nf4")
        # At most the 24-token limit, plus the end-of-turn token the chat template appends when counting.
        assert answer.completion_tokens and 1 <= answer.completion_tokens <= 25
    log = batching_worker.log_text()
    assert "concurrency: 4 (thread)" in log
    assert log.count("event=batching_started") == 1  # one model and one engine for all threads
    assert log.count("event=batching_request") >= len(questions)
    # Generation windows, from the answers' own records: some must overlap (streams batched together).
    windows = sorted(
        (a.finished_at.timestamp() - (a.generation_ms or 0) / 1000, a.finished_at.timestamp()) for a in answers
    )
    overlapping = sum(1 for (_, end), (start, _) in zip(windows, windows[1:], strict=False) if start < end)
    assert overlapping >= 1, windows


def test_worker_with_a_batching_thread_stops_on_sigterm(batching_worker: WorkerProcess) -> None:
    """transformers' batching thread is not a daemon: the worker must stop it at shutdown, or never exit."""
    proc = batching_worker.proc
    assert proc is not None and proc.poll() is None
    assert "event=batching_started" in batching_worker.log_text()  # the engine runs (a question was answered)
    proc.terminate()
    assert proc.wait(timeout=30) == 0
