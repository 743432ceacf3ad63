"""The generator protocol and the small pieces every backend shares.

A generator turns chat messages into streamed text. Backends (transformers, llama.cpp, an
OpenAI-compatible server) differ in how they load and tokenize, so callers only see this protocol and
never import a backend module directly: that keeps torch and llama.cpp out of processes that do not
generate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from llm.exceptions import GeneratorUnavailable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 512
    # Low but non-zero: grounded answers should be near-deterministic, yet pure greedy decoding makes
    # small models loop. 0 selects greedy decoding explicitly.
    temperature: float = 0.1
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    # The LoRA adapter to answer with (a name the backend was configured with); None: the base model.
    # Chat passes the collection's adapter here, so llm never needs to know what a collection is.
    adapter: str | None = None


@runtime_checkable
class Generator(Protocol):
    """What the rest of the project may rely on.

    The descriptive members are read-only properties so that a backend may compute them on demand (the
    context window of a GGUF file is only known once the file is opened).
    """

    @property
    def backend(self) -> str:
        """'transformers' | 'llamacpp' | 'openai' | 'extractive'."""
        ...

    @property
    def model_name(self) -> str:
        """Model id, file name or served model name, for logs and the answer record."""
        ...

    @property
    def quantization(self) -> str:
        """Human-readable, e.g. 'nf4-4bit (bnb, bf16 compute, double-quant)', 'gguf Q4_1', 'remote'."""
        ...

    @property
    def context_window(self) -> int:
        """Tokens the model attends to: prompt and answer together must fit in it."""
        ...

    def warm_up(self) -> None:
        """Load the model. Idempotent and thread-safe: only the first call does work."""
        ...

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens of the prompt exactly as `stream` would feed it: chat template and generation prompt."""
        ...

    def stream(self, *, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        """Yield text pieces as they are generated; ends at end-of-sequence, a stop string or the limit.

        Closing the iterator early stops generation (and frees the model for the next caller).
        """
        ...


@dataclass(frozen=True)
class NumberedPassage:
    """A passage as a prompt numbers it: [n] and its text."""

    n: int
    text: str


@dataclass(frozen=True)
class Extract:
    """An answer made of the passages' own sentences: `text` is `pieces` joined, each piece a sentence
    or table row followed by its citation [n]; `citations` are the passage numbers in order of use."""

    text: str
    citations: tuple[int, ...]
    score: float  # the best sentence's ranking score; under the extractor's threshold `text` is a refusal
    pieces: tuple[str, ...]


@runtime_checkable
class Extractor(Protocol):
    """A generator that can also answer from numbered passages directly, without a prompt (the evidence
    shown under a flagged answer is computed over the answer's passage snapshots this way)."""

    def extract(self, *, question: str, passages: Sequence[NumberedPassage]) -> Extract: ...


def messages_fold_system(messages: Sequence[ChatMessage]) -> tuple[ChatMessage, ...]:
    """Merge system messages into the first user message.

    Some chat templates (Mistral, Mixtral, Gemma) reject a 'system' role; the instructions still have to
    reach the model, and the first user turn is where those models were trained to see them.
    """
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    rest = [m for m in messages if m.role != "system"]
    if not system:
        return tuple(rest)
    for index, message in enumerate(rest):
        if message.role == "user":
            rest[index] = ChatMessage(role="user", content=f"{system}\n\n{message.content}")
            return tuple(rest)
    return (ChatMessage(role="user", content=system), *rest)


def adapter_refuse(*, backend: str, adapter: str | None) -> None:
    """Fail clearly when a backend that cannot switch LoRA adapters is asked for one.

    Answering with the base model instead would record answers as the adapter's that it never wrote.
    """
    if adapter is not None:
        raise GeneratorUnavailable(
            f"The {backend} backend cannot serve LoRA adapter {adapter!r}: use the transformers backend "
            "(RAG_LLM_BACKEND=transformers), or clear the collection's adapter in the admin."
        )


def pieces_cut_at_stop(pieces: Iterator[str], stop: Sequence[str]) -> Iterator[str]:
    """Pass `pieces` through, ending before the first stop string and never yielding any part of it.

    Text that could be the start of a stop string is held back until the next piece decides it, so a
    stop string split across pieces is still caught. The source iterator is closed on exit, which is
    what cancels generation in backends that run it in a thread.
    """
    try:
        if not stop:
            yield from pieces
            return
        held = ""
        for piece in pieces:
            held += piece
            cuts = [index for s in stop if (index := held.find(s)) >= 0]
            if cuts:
                if held[: min(cuts)]:
                    yield held[: min(cuts)]
                return
            keep = _stop_prefix_length(held, stop)
            if len(held) > keep:
                yield held[: len(held) - keep]
                held = held[len(held) - keep :]
        if held:
            yield held
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def _stop_prefix_length(text: str, stop: Sequence[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of some stop string."""
    best = 0
    for s in stop:
        for length in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:length]):
                best = length
                break
    return best
