"""Continuous batching for the transformers backend: concurrent questions share each forward pass.

One GPU worker answers many questions at once (Celery threads pool). Without batching, each answer runs
`model.generate` alone and the GPU idles between the small kernels of a single sequence; measured on an
H100 with a Mistral-7B-shaped NF4 model, plain `generate` decodes ~8 tokens/s per stream and two streams
only share that time. transformers' continuous-batching manager schedules every waiting request into the
next step (prefill and decode mixed, paged KV cache) and, on CUDA, replays captured CUDA graphs, which
removes most of the Python launch overhead that dominates 4-bit decoding of one sequence.

`ContinuousEngine` owns the manager and one dispatcher thread that routes outputs to per-request queues;
`stream` is safe to call from many threads at once and each caller only sees its own tokens.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llm.exceptions import GenerationFailed
from ragsite.logs import log_event

logger = logging.getLogger(__name__)

# Greedy decoding inside a sampling batch: a temperature this small puts all mass on the top token.
_GREEDY_TEMPERATURE = 1e-3
# How long a consumer waits for its next token before checking that the batching thread is alive.
_POLL_S = 1.0


@dataclass(frozen=True)
class BatchingOptions:
    """Tuning of the continuous-batching manager (see transformers' ContinuousBatchingConfig).

    `cache_memory`: share of the GPU memory left after loading the model that the paged KV cache takes;
    the rest holds CUDA graphs and activations (0.9, transformers' default, ran out of memory for graphs
    at 32 concurrent 1.4k-token prompts on an 80 GB H100). `kv_padding` / `q_padding`: CUDA-graph shape
    granularity in tokens; transformers pads KV reads to 16,384 tokens by default, which with SDPA
    attention made every decode step attend over the padding (22 tokens/s single stream vs 52 at 256).
    `cache_tokens`: on the CPU (tests, small models) the cache is sized in tokens instead of memory.
    """

    cache_memory: float = 0.4
    kv_padding: int = 256
    q_padding: int = 16
    page_size: int = 256
    cache_tokens: int = 4096
    max_batch_tokens: int = 2048


class _Request:
    __slots__ = ("outputs", "finished")

    def __init__(self) -> None:
        self.outputs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.finished = False


class ContinuousEngine:
    def __init__(self, *, model: Any, tokenizer: Any, options: BatchingOptions, model_name: str) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._options = options
        self._model_name = model_name
        self._lock = threading.Lock()
        self._requests: dict[str, _Request] = {}
        self._manager: Any = None
        self._dispatcher: threading.Thread | None = None
        self._stopping = threading.Event()

    # lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._manager is not None and self._manager.is_running():
                return
            self._manager = self._manager_new()
            self._manager.start()
            if self._dispatcher is None or not self._dispatcher.is_alive():
                self._dispatcher = threading.Thread(target=self._dispatch, name="hf-batch-dispatch", daemon=True)
                self._dispatcher.start()
        log_event(
            logger,
            "batching_started",
            model=self._model_name,
            device=str(self._model.device),
            cuda_graphs=str(self.config.get("use_cuda_graph")),
        )

    def stop(self) -> None:
        self._stopping.set()
        manager = self._manager
        if manager is not None and manager.is_running():
            manager.stop(block=True, timeout=30)
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=5)
        self._fail_all("The generator was stopped.")

    @property
    def config(self) -> dict[str, Any]:
        manager = self._manager
        if manager is None:
            return {}
        return dict(vars(manager.continuous_batching_config))

    def _manager_new(self) -> Any:
        import copy

        import torch
        from transformers import ContinuousBatchingConfig

        options = self._options
        # The model's own generation config (end-of-sequence ids, suppressed tokens...) with sampling
        # switched on: sampling is configured once for the whole batch, then the temperature and top-p are
        # set per request (per_request_processors), so one batch mixes greedy-like and sampled answers.
        generation = copy.deepcopy(self._model.generation_config)
        generation.update(do_sample=True, temperature=0.1, top_p=0.95)
        if generation.eos_token_id is None:
            eos = self._tokenizer.eos_token_id
            generation.eos_token_id = eos if eos is not None else -1
        kwargs: dict[str, Any] = {"per_request_processors": True, "page_size": options.page_size}
        if self._model.device.type == "cuda":
            kwargs.update(
                use_cuda_graph=True,
                kv_padding_interval_size=options.kv_padding,
                q_padding_interval_size=options.q_padding,
                max_memory_percent=options.cache_memory,
            )
        else:
            # Off the GPU the cache would be sized from host memory: size it from tokens instead.
            kwargs.update(
                num_blocks=max(2, math.ceil(options.cache_tokens / options.page_size)),
                max_batch_tokens=options.max_batch_tokens,
            )
        with torch.inference_mode():
            return self._model.init_continuous_batching(
                generation_config=generation, continuous_batching_config=ContinuousBatchingConfig(**kwargs)
            )

    # routing --------------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """The one reader of the manager's output queue: hands each output to its request's own queue."""
        while not self._stopping.is_set():
            manager = self._manager
            try:
                output = manager.get_result(timeout=0.5) if manager is not None else None
            except Exception:  # the dispatcher must outlive any single bad output
                logger.exception("event=batching_dispatch_failed")
                continue
            if output is None:
                if manager is not None and not manager.is_running() and not self._stopping.is_set():
                    error = getattr(manager.background_thread_status, "fatal_error", None)
                    self._fail_all(f"The batching thread stopped ({error!r}).")
                    time.sleep(0.5)
                continue
            request = self._requests.get(output.request_id)
            if request is not None:
                request.outputs.put(output)

    def _fail_all(self, message: str) -> None:
        for request in list(self._requests.values()):
            request.outputs.put(message)

    # the public call ------------------------------------------------------------------------------------

    def stream(self, ids: list[int], *, max_new_tokens: int, temperature: float, top_p: float) -> Iterator[str]:
        """Text pieces of one answer; closing the iterator cancels the request and frees its cache pages."""
        if self._manager is None or not self._manager.is_running():
            self.start()  # a crashed batching thread is restarted for the next question
        request_id = uuid.uuid4().hex
        request = _Request()
        self._requests[request_id] = request
        log_event(logger, "batching_request", prompt_tokens=len(ids), in_flight=len(self._requests))
        try:
            self._manager.add_request(
                list(ids),
                request_id=request_id,
                max_new_tokens=max_new_tokens,
                streaming=True,
                temperature=temperature if temperature > 0 else _GREEDY_TEMPERATURE,
                top_p=top_p if temperature > 0 else 1.0,
            )
            yield from self._pieces(request)
        finally:
            self._requests.pop(request_id, None)
            if not request.finished and self._manager is not None:
                self._manager.cancel_request(request_id)

    def _pieces(self, request: _Request) -> Iterator[str]:
        decoder = _IncrementalDecoder(self._tokenizer)
        seen = 0
        while True:
            try:
                output = request.outputs.get(timeout=_POLL_S)
            except queue.Empty:
                if self._manager is None or not self._manager.is_running():
                    raise GenerationFailed(
                        f"Generation with {self._model_name} stopped: the batching thread is not running."
                    ) from None
                continue
            if isinstance(output, str):
                raise GenerationFailed(f"Generation with {self._model_name} failed: {output}")
            if output.error:
                request.finished = True
                raise GenerationFailed(f"Generation with {self._model_name} failed: {output.error}")
            tokens = output.generated_tokens
            if len(tokens) > seen:
                piece = decoder.push(tokens[seen:])
                seen = len(tokens)
                if piece:
                    yield piece
            if output.is_finished():
                request.finished = True
                tail = decoder.flush()
                if tail:
                    yield tail
                return


class _IncrementalDecoder:
    """Token ids in, text out, without re-decoding the whole answer at every token.

    Decodes a short window (from the last emitted boundary) and emits only what is new, holding back
    text that ends in a partial UTF-8 sequence or that a following token may still merge with (the
    approach of text-generation-inference's detokenizer). Special tokens (end of sequence) are dropped.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def _text(self, start: int, end: int | None = None) -> str:
        return str(self._tokenizer.decode(self._ids[start:end], skip_special_tokens=True))

    def push(self, ids: list[int]) -> str:
        self._ids.extend(ids)
        before = self._text(self._prefix, self._read)
        after = self._text(self._prefix)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self._ids)
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        before = self._text(self._prefix, self._read)
        after = self._text(self._prefix)
        self._prefix = self._read = len(self._ids)
        return after[len(before) :] if len(after) > len(before) else ""
