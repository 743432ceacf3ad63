"""Celery tasks of the `gpu` queue. The worker runs one process per GPU; the model is loaded once, when the
worker starts, so the first question does not pay for it. With llama.cpp the pool is solo (one question at a
time); with transformers it is a threads pool whose concurrent questions share the GPU through continuous
batching. Celery enforces no time limits in a threads pool: there an answer ends at its token limit."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import InterfaceError, OperationalError

from chat import services
from chat.exceptions import ChatError
from ingestion.exceptions import IngestionError
from llm.exceptions import LlmError
from ragsite.components import components_close
from ragsite.logs import log_event
from retrieval.exceptions import RetrievalError

logger = logging.getLogger(__name__)

ANSWER_ERRORS = (LlmError, RetrievalError, IngestionError, ChatError)


@worker_ready.connect
def _warm_up(sender: Any = None, **_: Any) -> None:
    queues = set(sender.app.amqp.queues.consume_from) if sender is not None else set()
    if settings.GPU_QUEUE not in queues:
        return
    from ingestion.embedding import embedder_get
    from llm.generators import generator_get

    generator = generator_get()
    generator.warm_up()
    embedder_get().warm_up()
    services.grounding_warm_up()
    log_event(logger, "gpu_worker_warm", backend=generator.backend, model=generator.model_name)


@worker_shutdown.connect
def _shut_down(**_: Any) -> None:
    components_close()


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    max_retries=3,
    soft_time_limit=settings.GPU_SOFT_TIME_LIMIT,
    time_limit=settings.GPU_TIME_LIMIT,
)
def generate_answer(self, answer_id: int, top_k: int | None = None) -> None:  # type: ignore[no-untyped-def]
    try:
        services.answer_generate(answer_id=answer_id, top_k=top_k)
    except (OperationalError, InterfaceError):
        if self.request.retries >= self.max_retries:
            services.answer_fail(answer_id=answer_id, message="The database was unavailable: ask again")
            return
        raise
    except SoftTimeLimitExceeded:
        services.answer_fail(
            answer_id=answer_id, message=f"Answering took longer than {settings.GPU_SOFT_TIME_LIMIT} s: ask again later"
        )
        return
    except ANSWER_ERRORS as exc:  # the apps' own errors carry a message a person can act on
        services.answer_fail(answer_id=answer_id, message=str(exc))
        return
    except Exception as exc:
        logger.exception("event=generate_crashed answer=%s", answer_id)
        services.answer_fail(answer_id=answer_id, message=f"Answering failed unexpectedly ({type(exc).__name__}): ask again")
        return
    score_answer.delay(answer_id)


@shared_task(bind=True, acks_late=True, autoretry_for=(OperationalError, InterfaceError), retry_backoff=2, max_retries=3)
def score_answer(self, answer_id: int) -> None:  # type: ignore[no-untyped-def]
    """Grounding runs after the answer has streamed, so it never delays it."""
    try:
        services.answer_ground(answer_id=answer_id)
    except (OperationalError, InterfaceError):
        if self.request.retries >= self.max_retries:
            services.answer_ground_fail(answer_id=answer_id, reason="database unavailable")
            return
        raise
    except Exception as exc:
        logger.exception("event=grounding_crashed answer=%s", answer_id)
        services.answer_ground_fail(answer_id=answer_id, reason=type(exc).__name__)
