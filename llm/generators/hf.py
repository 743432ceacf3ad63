"""Transformers backend: any causal LM with a chat template, 4-bit NF4 through bitsandbytes by default.

Mistral-7B-Instruct and Mixtral-8x7B-Instruct go through the same code: nothing here is specific to a
model beyond what its config and tokenizer say (Mixtral's fused experts are quantized by hf_moe.py).
LoRA adapters (`adapters`, `adapters_dir`) are served from one base model: see hf_adapters.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateError

from llm.exceptions import ContextOverflow, GenerationFailed, GeneratorUnavailable
from llm.generators.base import ChatMessage, GenerationParams, messages_fold_system, pieces_cut_at_stop
from llm.generators.hf_adapters import AdapterGate, LoraSlots, adapters_resolve, pieces_gated
from llm.generators.hf_batching import BatchingOptions, ContinuousEngine
from ragsite.components import LoadsOnce
from ragsite.logs import log_event

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "mistralai/Mistral-7B-Instruct-v0.2"
# Mistral v0.2 accepts 32k tokens, but prefill time and KV-cache memory grow with the prompt and a RAG
# prompt of a few passages needs far less; raise `max_context` where the GPU allows.
DEFAULT_MAX_CONTEXT = 8192


class TransformersGenerator(LoadsOnce):
    backend = "transformers"

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        quantization: str = "nf4",
        double_quant: bool = True,
        device_map: str | None = None,
        local_files_only: bool | None = None,
        max_context: int | None = DEFAULT_MAX_CONTEXT,
        batching: str = "auto",
        batching_options: dict[str, Any] | None = None,
        adapters: dict[str, str] | None = None,
        adapters_dir: str | None = None,
        quantize_experts: bool = True,
    ) -> None:
        if quantization not in ("nf4", "none"):
            raise GeneratorUnavailable(
                f"Unknown quantization {quantization!r} for {model}: use 'nf4' (4-bit) or 'none'."
            )
        if batching not in ("auto", "continuous", "off"):
            raise GeneratorUnavailable(
                f"Unknown batching {batching!r}: use 'auto' (continuous on a GPU), 'continuous' or 'off'."
            )
        try:
            self._batching_options = BatchingOptions(**(batching_options or {}))
        except TypeError as exc:
            raise GeneratorUnavailable(f"Bad batching_options ({exc}): see llm/generators/hf_batching.py.") from exc
        self._batching = batching
        self._engine: ContinuousEngine | None = None
        # Without batching, one generate() at a time: concurrent calls would only fight over the GPU.
        self._generate_lock = threading.Lock()
        self.model_name = model
        self._quant = quantization
        self._double_quant = double_quant
        self._device_map = device_map
        self._local_files_only = local_files_only
        self._max_context = max_context
        self._model: Any = None
        self._tokenizer: Any = None
        self._context_window = 0
        # Learned on the first template call: does this template reject a 'system' role?
        self._fold_system = False
        self._adapter_paths = dict(adapters or {})
        self._adapters_dir = adapters_dir
        self._slots: LoraSlots | None = None
        self._gate: AdapterGate | None = None
        self._quantize_experts = quantize_experts
        self._experts_quantized = 0

    @property
    def quantization(self) -> str:
        if self._quant == "nf4":
            extra = ", double-quant" if self._double_quant else ""
            extra += ", experts nf4" if self._experts_quantized else ""
            return f"nf4-4bit (bnb, bf16 compute{extra})"
        if self._model is None:
            return "none (full precision)"
        return f"none ({str(self._model.dtype).removeprefix('torch.')})"

    @property
    def context_window(self) -> int:
        """From the model's config.json: readable without loading the weights (or importing torch)."""
        if not self._context_window:
            from transformers import AutoConfig

            try:
                config = AutoConfig.from_pretrained(self.model_name, local_files_only=self._offline())
            except (OSError, ValueError) as exc:
                raise self._unavailable(exc) from exc
            self._context_window = _context_window(config, self._max_context)
        return self._context_window

    def _offline(self) -> bool:
        from huggingface_hub import constants as hub_constants

        return bool(
            hub_constants.HF_HUB_OFFLINE if self._local_files_only is None else self._local_files_only
        )

    def _unavailable(self, exc: Exception) -> GeneratorUnavailable:
        return GeneratorUnavailable(
            f"Cannot load the transformers model {self.model_name!r} ({exc}). Set LLM_OPTIONS 'model' "
            f"to a local directory holding it, or download it once with `hf download {self.model_name}` "
            "where the hub is reachable."
        )

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

        started = time.monotonic()
        offline = self._offline()
        on_cuda = torch.cuda.is_available() and self._device_map != "cpu"
        device_map = self._device_map or ("auto" if on_cuda else "cpu")
        kwargs: dict[str, Any] = {"local_files_only": offline, "device_map": device_map}
        if self._quant == "nf4":
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=torch.bfloat16,
                bnb_4bit_use_double_quant=self._double_quant,
            )
        else:
            # Full precision: bf16 where the GPU has it, fp32 on the CPU where bf16 matmuls are slow.
            kwargs["dtype"] = torch.bfloat16 if on_cuda else torch.float32
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_name, local_files_only=offline)
            model = AutoModelForCausalLM.from_pretrained(self.model_name, **kwargs)
        except (OSError, ValueError, ImportError) as exc:
            raise self._unavailable(exc) from exc
        if tokenizer.chat_template is None:
            raise GeneratorUnavailable(
                f"The tokenizer of {self.model_name!r} has no chat template: use an instruct/chat model."
            )
        model.eval()
        if self._quant == "nf4" and self._quantize_experts:
            from llm.generators.hf_moe import experts_quantize

            self._experts_quantized = experts_quantize(model, double_quant=self._double_quant)
        # Before the batching engine starts: its CUDA graphs must be captured with the adapter slot in place.
        found = adapters_resolve(adapters=self._adapter_paths, directory=self._adapters_dir)
        if found:
            self._slots = LoraSlots(model=model, adapters=found)
            self._gate = AdapterGate(self._slots.switch)
        self._tokenizer = tokenizer
        self._context_window = _context_window(model.config, self._max_context)
        if self._batching == "continuous" or (self._batching == "auto" and model.device.type == "cuda"):
            self._engine = ContinuousEngine(
                model=model, tokenizer=tokenizer, options=self._batching_options, model_name=self.model_name
            )
            self._engine.start()
            self._engine_warm_up()
        self._model = model
        log_event(
            logger,
            "generator_loaded",
            backend=self.backend,
            model=self.model_name,
            quantization=self.quantization,
            device_map=str(device_map),
            device=str(model.device),
            context_window=self._context_window,
            batching="continuous" if self._engine is not None else "off",
            adapters=",".join(self.adapters) or "none",
            seconds=time.monotonic() - started,
        )

    def _engine_warm_up(self) -> None:
        """One short answer, so that the first question does not pay for capturing the CUDA graphs."""
        assert self._engine is not None
        ids, self._fold_system = chat_template_ids(
            tokenizer=self._tokenizer,
            messages=[ChatMessage(role="user", content="Hello")],
            fold_system=self._fold_system,
        )
        for _ in self._engine.stream(ids, max_new_tokens=4, temperature=0.0, top_p=1.0):
            pass

    def close(self) -> None:
        """Stop the batching thread (worker shutdown); the model stays loaded."""
        if self._engine is not None:
            self._engine.stop()

    @property
    def loaded_model(self) -> Any:
        """The transformers model, loading it first: adapter training (llm.lora) works on it."""
        self.warm_up()
        return self._model

    @property
    def tokenizer(self) -> Any:
        self.warm_up()
        return self._tokenizer

    def prompt_ids(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Token ids of `messages` exactly as `stream` feeds them to the model."""
        self.warm_up()
        return self._prompt_ids(messages)

    @property
    def adapters(self) -> tuple[str, ...]:
        """Names of the LoRA adapters loaded beside the base model (known once loaded)."""
        return self._slots.names if self._slots is not None else ()

    @property
    def batching(self) -> str:
        return "continuous" if self._engine is not None else "off"

    def _prompt_ids(self, messages: Sequence[ChatMessage]) -> list[int]:
        ids, self._fold_system = chat_template_ids(
            tokenizer=self._tokenizer, messages=messages, fold_system=self._fold_system
        )
        return ids

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        self.warm_up()
        return len(self._prompt_ids(messages))

    def stream(self, *, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        self.warm_up()
        if params.adapter is not None and params.adapter not in self.adapters:
            loaded = ", ".join(self.adapters) or "none"
            raise GeneratorUnavailable(
                f"No LoRA adapter {params.adapter!r} is loaded (loaded: {loaded}). Train it into "
                f"{self._adapters_dir or 'the adapters directory'} with `manage.py lora_train` and restart the "
                "gpu worker, or name its folder in LLM_OPTIONS 'adapters'."
            )
        ids = self._prompt_ids(messages)
        room = self._context_window - len(ids)
        if room <= 0:
            raise ContextOverflow(
                f"The prompt has {len(ids)} tokens but {self.model_name} accepts {self._context_window}: "
                "send fewer passages or a shorter conversation."
            )
        max_new = min(params.max_new_tokens, room)
        if self._engine is not None:
            pieces = self._engine.stream(
                ids, max_new_tokens=max_new, temperature=params.temperature, top_p=params.top_p
            )
        else:
            pieces = self._generate(ids, params, max_new)
        if self._gate is not None:
            pieces = pieces_gated(self._gate, params.adapter, pieces)
        return pieces_cut_at_stop(pieces, params.stop)

    def _generate(self, ids: list[int], params: GenerationParams, max_new: int) -> Iterator[str]:
        with self._generate_lock:
            yield from self._generate_one(ids, params, max_new)

    def _generate_one(self, ids: list[int], params: GenerationParams, max_new: int) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        cancel = threading.Event()
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = self._generate_kwargs(ids, params, max_new, streamer=streamer, cancel=cancel)
        failures: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self._model.generate(**kwargs)
            except BaseException as exc:  # noqa: BLE001 - thread boundary: re-raised in the consumer below
                failures.append(exc)
                streamer.end()  # unblock the consumer, which otherwise waits for a token forever

        thread = threading.Thread(target=run, name="hf-generate", daemon=True)
        thread.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
            if failures:
                raise GenerationFailed(
                    f"Generation with {self.model_name} failed: {failures[0]!r}"
                ) from failures[0]
        finally:
            # Runs on normal end and when the consumer closes us early: generate() sees the event at
            # its next token and returns, so no thread keeps the model busy after the caller is gone.
            cancel.set()
            thread.join()

    def _generate_kwargs(
        self,
        ids: list[int],
        params: GenerationParams,
        max_new: int,
        *,
        streamer: Any,
        cancel: threading.Event,
    ) -> dict[str, Any]:
        import torch
        from transformers import StoppingCriteriaList

        input_ids = torch.tensor([ids], device=self._model.device)
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "streamer": streamer,
            "max_new_tokens": max_new,
            "stopping_criteria": StoppingCriteriaList([_CancelCriteria(cancel)]),
            # Mistral's tokenizer has no pad token; generate() wants one even for a single sequence.
            "pad_token_id": self._tokenizer.eos_token_id
            if self._tokenizer.pad_token_id is None
            else self._tokenizer.pad_token_id,
        }
        if params.temperature <= 0:
            kwargs["do_sample"] = False
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        return kwargs


class _CancelCriteria:
    """A StoppingCriteria (duck-typed: generate() only calls it) that ends generation on an event."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        import torch

        return torch.full(
            (input_ids.shape[0],), self._event.is_set(), dtype=torch.bool, device=input_ids.device
        )


def chat_template_ids(
    *, tokenizer: Any, messages: Sequence[ChatMessage], fold_system: bool
) -> tuple[list[int], bool]:
    """Token ids of `messages` through the tokenizer's chat template, and whether system was folded.

    The generation prompt is added when the last message is not the assistant's, because that is the
    prompt generation actually sees. Templates that raise on a 'system' role (Mistral, Mixtral) get it
    folded into the first user message; the caller keeps the returned flag so later calls skip the
    failing attempt.
    """
    add_generation_prompt = bool(messages) and messages[-1].role != "assistant"

    def ids_of(chat: Sequence[ChatMessage]) -> list[int]:
        encoded = tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in chat],
            add_generation_prompt=add_generation_prompt,
            tokenize=True,
            return_dict=True,
            # Text such as "</s>[INST]" inside a passage must stay text: encoded as the real control
            # tokens, a document could end the user's turn and speak as the user or the system.
            sanitize_control_tokens=True,
        )
        return list(encoded["input_ids"])

    if fold_system:
        return ids_of(messages_fold_system(messages)), True
    try:
        return ids_of(messages), False
    except TemplateError:
        if not any(m.role == "system" for m in messages):
            raise
        return ids_of(messages_fold_system(messages)), True


def _context_window(config: Any, cap: int | None) -> int:
    """The smallest of the model's position limit, its sliding window (when set) and our cap."""
    limits = [
        value
        for value in (
            getattr(config, "max_position_embeddings", None),
            getattr(config, "sliding_window", None),
            cap,
        )
        if isinstance(value, int) and value > 0
    ]
    if not limits:
        raise GeneratorUnavailable(
            "The model config gives no context length: set LLM_OPTIONS 'max_context' to the model's limit."
        )
    return min(limits)
