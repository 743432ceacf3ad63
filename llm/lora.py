"""Training a LoRA adapter from answers people approved (QLoRA: LoRA matrices on the frozen 4-bit base).

Pure: it receives examples (question, the passages the answer was given, earlier turns, the approved
answer) and knows nothing of where they came from (`manage.py lora_train` selects them). Each example is
rendered exactly as the gpu worker renders a question: `llm.prompts.prompt_build` with the same
generator, then the generator's own chat template ids, and the answer's tokens after them, so the
adapter learns on the sequence it will see when serving. Only the answer's tokens are learnt (the
prompt's labels are masked).

Defaults are the reference QLoRA recipe for Mistral-7B: rank 8, alpha 16, dropout 0.05, q_proj and
v_proj, NF4 base with bf16 compute. A held-out share of the examples is scored before and after
training (mean cross-entropy per answer token), which is the number to read before serving an adapter.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llm.exceptions import TrainingDataInvalid
from llm.generators.base import ChatMessage
from llm.generators.hf import TransformersGenerator
from llm.prompts import PromptPassage, prompt_build
from ragsite.logs import log_event

logger = logging.getLogger(__name__)

_IGNORE = -100  # the label cross-entropy skips


@dataclass(frozen=True)
class FeedbackExample:
    question: str
    passages: tuple[PromptPassage, ...]
    answer: str
    history: tuple[ChatMessage, ...] = ()
    answer_id: int | None = None  # for logs only


@dataclass(frozen=True)
class LoraOptions:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    steps: int = 100
    learning_rate: float = 2e-4
    batch_size: int = 4
    held_out: float = 0.2  # share of the examples kept out of training to measure the loss on
    seed: int = 0
    # As served (settings LLM_MAX_NEW_TOKENS, LLM_GUARDRAIL): they decide how many passages the prompt keeps.
    max_new_tokens: int = 384
    guardrail: bool = True
    # Recomputes activations in the backward pass: less GPU memory for long RAG prompts, ~30% slower.
    gradient_checkpointing: bool = True


@dataclass(frozen=True)
class LoraTrainResult:
    path: Path
    base_model: str
    train_examples: int
    held_out_examples: int
    loss_before: float
    loss_after: float
    steps: int
    answer_tokens: int
    seconds: float
    options: LoraOptions = field(default_factory=LoraOptions)


@dataclass(frozen=True)
class _Encoded:
    ids: list[int]
    labels: list[int]


def examples_split(
    examples: Sequence[FeedbackExample], *, held_out: float, seed: int
) -> tuple[list[FeedbackExample], list[FeedbackExample]]:
    """Shuffled (seeded) into training and held-out parts; at least one of each."""
    if len(examples) < 2:
        raise TrainingDataInvalid(
            f"{len(examples)} approved answer(s) found: training needs at least 2 (one is held out to "
            "measure the loss). Widen --since, or collect more thumbs-up answers first."
        )
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    count = min(len(shuffled) - 1, max(1, round(len(shuffled) * held_out)))
    return shuffled[count:], shuffled[:count]


def example_encode(*, generator: TransformersGenerator, example: FeedbackExample, options: LoraOptions) -> _Encoded:
    """Prompt ids as the worker would send them, then the answer's ids and end-of-sequence."""
    built = prompt_build(
        question=example.question,
        passages=example.passages,
        history=example.history,
        generator=generator,
        max_new_tokens=options.max_new_tokens,
        guardrail=options.guardrail,
    )
    tokenizer = generator.tokenizer
    prompt = generator.prompt_ids(built.messages)
    # Tokenized apart from the prompt, as generation produces it: token by token after the prompt.
    answer = list(tokenizer(example.answer.strip(), add_special_tokens=False)["input_ids"])[: options.max_new_tokens]
    eos = tokenizer.eos_token_id
    answer += [eos] if eos is not None else []
    return _Encoded(ids=prompt + answer, labels=[_IGNORE] * len(prompt) + answer)


def _batch(encoded: Sequence[_Encoded], *, pad: int, device: Any) -> dict[str, Any]:
    import torch

    width = max(len(e.ids) for e in encoded)
    ids = [e.ids + [pad] * (width - len(e.ids)) for e in encoded]
    labels = [e.labels + [_IGNORE] * (width - len(e.labels)) for e in encoded]
    mask = [[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in encoded]
    return {
        "input_ids": torch.tensor(ids, device=device),
        "attention_mask": torch.tensor(mask, device=device),
        "labels": torch.tensor(labels, device=device),
    }


def _held_out_loss(model: Any, encoded: Sequence[_Encoded], *, pad: int, device: Any) -> float:
    """Mean cross-entropy per answer token over the held-out examples (one at a time: no padding effects)."""
    import torch

    total, tokens = 0.0, 0
    _eval_mode(model)
    with torch.no_grad():
        for example in encoded:
            count = sum(1 for label in example.labels[1:] if label != _IGNORE)  # labels shift by one
            loss = model(**_batch([example], pad=pad, device=device)).loss
            total += float(loss) * count
            tokens += count
    return total / max(tokens, 1)


def _eval_mode(model: Any) -> None:
    """eval() for scoring, except that bitsandbytes' 4-bit linears keep their training flag.

    On a CPU with AVX512-BF16, an eval-mode Linear4bit repacks its weight for a faster CPU kernel on its
    first forward without gradients, and that kernel has no backward: training after such a forward
    silently gets no gradients. The flag changes nothing else in a Linear4bit (no dropout in it).
    """
    import bitsandbytes as bnb

    model.eval()
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.train()


def lora_train(
    *,
    generator: TransformersGenerator,
    examples: Sequence[FeedbackExample],
    output: Path,
    options: LoraOptions = LoraOptions(),
    on_step: Callable[[int, float], None] | None = None,
) -> LoraTrainResult:
    """Train an adapter on `generator`'s base model and save it in `output` (replaced whole at the end).

    The generator must not serve afterwards: its model now carries the training adapter.
    """
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import get_linear_schedule_with_warmup

    started = time.monotonic()
    train, held = examples_split(examples, held_out=options.held_out, seed=options.seed)
    model = generator.loaded_model
    tokenizer = generator.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train_encoded = [example_encode(generator=generator, example=e, options=options) for e in train]
    held_encoded = [example_encode(generator=generator, example=e, options=options) for e in held]
    torch.manual_seed(options.seed)
    if getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=options.gradient_checkpointing)
    elif options.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    config = LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=list(options.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(model, config)
    except ValueError as exc:  # e.g. a target module the model does not have
        raise TrainingDataInvalid(f"Cannot put LoRA on {generator.model_name} ({exc}).") from exc
    device = generator.loaded_model.device
    # A new adapter's B matrices are zero: this is the base model's loss.
    loss_before = _held_out_loss(model, held_encoded, pad=pad, device=device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=options.learning_rate, weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, options.steps // 10), options.steps)
    order = random.Random(options.seed + 1)
    queue: list[_Encoded] = []
    model.train()
    for step in range(1, options.steps + 1):
        batch: list[_Encoded] = []
        while len(batch) < min(options.batch_size, len(train_encoded)):
            if not queue:
                queue = list(train_encoded)
                order.shuffle(queue)
            batch.append(queue.pop())
        loss = model(**_batch(batch, pad=pad, device=device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if on_step is not None:
            on_step(step, float(loss.detach()))
    loss_after = _held_out_loss(model, held_encoded, pad=pad, device=device)
    result = LoraTrainResult(
        path=output,
        base_model=generator.model_name,
        train_examples=len(train),
        held_out_examples=len(held),
        loss_before=loss_before,
        loss_after=loss_after,
        steps=options.steps,
        answer_tokens=sum(sum(1 for label in e.labels if label != _IGNORE) for e in train_encoded),
        seconds=time.monotonic() - started,
        options=options,
    )
    _adapter_save(model, result)
    log_event(
        logger, "lora_trained", path=str(output), train=result.train_examples, held_out=result.held_out_examples,
        loss_before=round(loss_before, 4), loss_after=round(loss_after, 4), steps=options.steps,
        seconds=round(result.seconds, 1),
    )
    return result


def _adapter_save(model: Any, result: LoraTrainResult) -> None:
    """Write into a hidden sibling folder, then swap it in: the worker never sees a half-written adapter."""
    output = result.path
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the worker may run as another user
    model.save_pretrained(str(staging))
    report = {k: v for k, v in asdict(result).items() if k != "path"}
    report["options"]["target_modules"] = list(result.options.target_modules)
    report["loss_before"] = _finite(result.loss_before)
    report["loss_after"] = _finite(result.loss_after)
    (staging / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    old: Path | None = None
    if output.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old.", dir=output.parent))
        os.replace(output, old / output.name)
    os.replace(staging, output)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
