"""LoRA adapters on the transformers backend: one base model in memory, an adapter chosen per question.

How adapters are switched. peft's own switch (`set_adapter`) changes which Python branch each LoRA layer
takes. Under continuous batching on a GPU the forward pass is replayed from captured CUDA graphs, and a
replayed graph runs the kernels of the branch that was active when it was captured, whatever peft's
flags say afterwards. So the model gets ONE extra LoRA slot ("live": rank = the largest adapter rank,
on the union of the adapters' target modules, scaling 1), and switching copies the chosen adapter's
matrices into that slot's tensors in place (zero-padded to the slot's rank, the adapter's alpha/r
folded into B; all zeros for the base model). Tensor addresses never change, so the graphs stay valid,
and the answers are exactly peft's for that adapter. The cost: the base model also runs the (zero) LoRA
matmuls, a few million multiply-adds per token at rank 8 on q_proj/v_proj of a 7B model.

How concurrent questions share it. The slot holds one adapter at a time, and continuous batching puts
every running request in each forward pass, so requests are grouped by adapter (`AdapterGate`):
requests for the active adapter join the running batch; a request for another adapter waits until the
running ones finish, then the slot is switched and that adapter's queued requests run together. Turns
go in arrival order (a request never overtakes one that waits for another adapter), so a busy adapter
cannot starve a quiet one. Grouping keeps batching's throughput within a turn; serialising every
question would throw it away. peft's mixed-adapter batches (`adapter_names=` per row) need the batch
in our hands, which transformers' batching manager does not give.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm.exceptions import GeneratorUnavailable
from ragsite.logs import log_event

logger = logging.getLogger(__name__)

LIVE = "live"
CONFIG_FILE = "adapter_config.json"
_PREFIX = "base_model.model."
_DIRTY = object()  # the slot's contents are unknown (a switch failed half-way)


def adapters_resolve(*, adapters: Mapping[str, str] | None, directory: str | None) -> dict[str, Path]:
    """Adapter name -> folder: every folder of `directory` holding an adapter, then `adapters` (name -> path,
    relative paths under `directory`), which wins on a shared name. Folders starting with '.' are
    unfinished training output and are skipped."""
    found: dict[str, Path] = {}
    root = Path(directory) if directory else None
    if root is not None and root.is_dir():
        for child in sorted(root.iterdir()):
            if not child.name.startswith(".") and (child / CONFIG_FILE).is_file():
                found[child.name] = child
    for name, raw in (adapters or {}).items():
        path = Path(raw)
        if not path.is_absolute() and root is not None:
            path = root / path
        if not (path / CONFIG_FILE).is_file():
            raise GeneratorUnavailable(
                f"LoRA adapter {name!r}: {path} holds no {CONFIG_FILE}. Point LLM_OPTIONS 'adapters' at a "
                "folder written by `manage.py lora_train` or peft's save_pretrained."
            )
        found[name] = path
    return found


@dataclass(frozen=True)
class _Adapter:
    name: str
    rank: int
    # module name -> (A zero-padded to the slot's rank, B scaled by alpha/r and zero-padded)
    weights: dict[str, tuple[Any, Any]]


def _adapter_read(name: str, path: Path) -> tuple[dict[str, tuple[Any, Any]], int]:
    """The adapter's (A, B * scaling) per target module, on the CPU, and its largest rank."""
    from peft import LoraConfig, PeftType
    from peft.utils import load_peft_weights

    try:
        config = LoraConfig.from_pretrained(str(path))
        tensors = load_peft_weights(str(path), device="cpu")
    except (OSError, ValueError, TypeError) as exc:
        raise GeneratorUnavailable(f"Cannot read LoRA adapter {name!r} at {path} ({exc}).") from exc
    unsupported = [
        what
        for what, bad in (
            ("a method other than LoRA", config.peft_type != PeftType.LORA),
            ("DoRA", bool(config.use_dora)),
            ("trained biases", config.bias != "none"),
            ("modules_to_save", bool(config.modules_to_save)),
            ("per-module alpha (alpha_pattern)", bool(config.alpha_pattern)),
            ("target_parameters", bool(getattr(config, "target_parameters", None))),
        )
        if bad
    ]
    if unsupported:
        raise GeneratorUnavailable(
            f"LoRA adapter {name!r} at {path} uses {', '.join(unsupported)}, which the adapter slot cannot "
            "hold: train it with `manage.py lora_train` (plain LoRA on linear layers)."
        )
    pairs: dict[str, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        module, _, kind = key.removeprefix(_PREFIX).rpartition(".lora_")
        if kind not in ("A.weight", "B.weight"):
            raise GeneratorUnavailable(f"LoRA adapter {name!r} has a weight the slot cannot hold: {key}.")
        pairs.setdefault(module, {})[kind[0]] = tensor
    weights: dict[str, tuple[Any, Any]] = {}
    for module, pair in pairs.items():
        a, b = pair.get("A"), pair.get("B")
        if a is None or b is None or a.shape[0] != b.shape[1]:
            raise GeneratorUnavailable(f"LoRA adapter {name!r}: the A and B matrices of {module} do not match.")
        rank = int(a.shape[0])
        scaling = config.lora_alpha / (math.sqrt(rank) if config.use_rslora else rank)
        weights[module] = (a.float(), b.float() * scaling)
    if not weights:
        raise GeneratorUnavailable(f"LoRA adapter {name!r} at {path} has no weights.")
    return weights, max(int(a.shape[0]) for a, _ in weights.values())


class LoraSlots:
    """The live slot in the model, and every configured adapter's tensors beside it on the same device."""

    def __init__(self, *, model: Any, adapters: Mapping[str, Path]) -> None:
        import torch
        from peft import LoraConfig, inject_adapter_in_model

        read = {name: _adapter_read(name, path) for name, path in adapters.items()}
        rank = max(r for _, r in read.values())
        targets = sorted({module for weights, _ in read.values() for module in weights})
        named = dict(model.named_modules())
        missing = [m for m in targets if m not in named]
        if missing:
            raise GeneratorUnavailable(
                f"LoRA adapters target modules the model does not have ({', '.join(missing[:3])}): were they "
                "trained on another base model? Train them on the model the worker serves."
            )
        # Full module names: peft matches a target when the name equals it or ends with '.<target>'.
        config = LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=targets, bias="none")
        inject_adapter_in_model(config, model, adapter_name=LIVE)
        named = dict(model.named_modules())
        self._slot: dict[str, tuple[Any, Any]] = {}
        for module in targets:
            layer = named[module]
            # float32 like peft's own loading (autocast_adapter_dtype): answers match PeftModel's exactly.
            a_layer, b_layer = layer.lora_A[LIVE].float(), layer.lora_B[LIVE].float()
            a_layer.requires_grad_(False)
            b_layer.requires_grad_(False)
            self._slot[module] = (a_layer.weight, b_layer.weight)
        self._adapters: dict[str, _Adapter] = {}
        for name, (weights, adapter_rank) in read.items():
            padded: dict[str, tuple[Any, Any]] = {}
            for module, (a, b) in weights.items():
                slot_a, slot_b = self._slot[module]
                if a.shape[1] != slot_a.shape[1] or b.shape[0] != slot_b.shape[0]:
                    raise GeneratorUnavailable(
                        f"LoRA adapter {name!r} does not fit {module} of this model (shapes {tuple(a.shape)}, "
                        f"{tuple(b.shape)}): it was trained on another base model."
                    )
                full_a = torch.zeros_like(slot_a)
                full_b = torch.zeros_like(slot_b)
                full_a[: a.shape[0]].copy_(a)
                full_b[:, : b.shape[1]].copy_(b)
                padded[module] = (full_a, full_b)
            self._adapters[name] = _Adapter(name=name, rank=adapter_rank, weights=padded)
        self._on_cuda = any(t.device.type == "cuda" for pair in self._slot.values() for t in pair)
        self.switch(None)
        log_event(
            logger, "lora_slots_ready", adapters=",".join(sorted(self._adapters)), rank=rank, modules=len(targets)
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._adapters))

    def switch(self, name: str | None) -> None:
        """Fill the slot with adapter `name` (None: zeros, the base model). Call with no request running."""
        import torch

        adapter = self._adapters[name] if name is not None else None
        with torch.no_grad():
            for module, (slot_a, slot_b) in self._slot.items():
                source = adapter.weights.get(module) if adapter is not None else None
                if source is None:
                    slot_a.zero_()
                    slot_b.zero_()
                else:
                    slot_a.copy_(source[0])
                    slot_b.copy_(source[1])
        if self._on_cuda:
            # The batching thread may run on another CUDA stream: the copies must land before its next step.
            torch.cuda.synchronize()


class AdapterGate:
    """Admits requests of one adapter at a time (any number of them), switching only when none runs."""

    def __init__(self, switch: Callable[[str | None], None]) -> None:
        self._switch = switch
        self._cond = threading.Condition()
        self._active: object = None
        self._running = 0
        self._waiting: deque[tuple[str | None, object]] = deque()
        self.switches = 0

    @contextlib.contextmanager
    def hold(self, adapter: str | None) -> Iterator[None]:
        ticket = (adapter, object())
        with self._cond:
            self._waiting.append(ticket)
            try:
                self._cond.wait_for(lambda: self._may_enter(ticket))
            finally:
                self._waiting.remove(ticket)
            if self._active != adapter:  # _DIRTY equals no adapter, so a failed switch is redone
                try:
                    self._switch(adapter)
                except BaseException:
                    self._active = _DIRTY
                    self._cond.notify_all()
                    raise
                self._active = adapter
                self.switches += 1
                log_event(logger, "adapter_switched", adapter=adapter or "base", waiting=len(self._waiting))
            self._running += 1
            self._cond.notify_all()  # requests for the same adapter queued behind this one may enter too
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def _may_enter(self, ticket: tuple[str | None, object]) -> bool:
        for waiting in self._waiting:
            if waiting is ticket:
                break
            if waiting[0] != ticket[0]:
                return False  # an earlier request waits for another adapter: its turn comes first
        return self._running == 0 or self._active == ticket[0]


def pieces_gated(gate: AdapterGate, adapter: str | None, pieces: Iterator[str]) -> Iterator[str]:
    """`pieces`, produced while the gate holds the slot on `adapter`; closing it releases the slot.

    `pieces` must be lazy (a generator that has not started): the request reaches the model only once
    the gate has let it in.
    """
    with gate.hold(adapter):
        yield from pieces
