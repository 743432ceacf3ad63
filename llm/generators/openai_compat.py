"""OpenAI-compatible server backend: vLLM, TGI, `python -m llama_cpp.server`, or any /v1 chat API.

The model runs elsewhere, so "loading" is building an HTTP client. Token counts for prompt packing
come from a local copy of the served model's tokenizer when one is configured (exact), otherwise from
a character estimate (see `estimate_tokens`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from llm.exceptions import ContextOverflow, GenerationFailed, GeneratorUnavailable
from llm.generators.base import ChatMessage, GenerationParams, adapter_refuse
from ragsite.components import LoadsOnce

# Llama/Mistral SentencePiece vocabularies average about 3.5 characters per token on English prose,
# fewer than the 4 usually quoted for OpenAI's tokenizers. Counting low makes the server reject the
# request as too long, counting high only leaves a passage out, so the estimate errs high.
CHARS_PER_TOKEN = 3.5
# Role markers and separators that chat templates add around each message (ChatML: about 4), and the
# generation prompt that opens the answer.
MESSAGE_OVERHEAD_TOKENS = 5
GENERATION_PROMPT_TOKENS = 3


def estimate_tokens(messages: Sequence[ChatMessage]) -> int:
    """A deliberately generous token estimate for when no tokenizer is available."""
    content = sum(math.ceil(len(m.content) / CHARS_PER_TOKEN) for m in messages)
    return content + MESSAGE_OVERHEAD_TOKENS * len(messages) + GENERATION_PROMPT_TOKENS


class OpenAICompatGenerator(LoadsOnce):
    backend = "openai"
    quantization = "remote"

    def __init__(
        self,
        *,
        base_url: str = "http://127.0.0.1:8000/v1",
        model: str = "",
        api_key: str = "",
        context_window: int = 4096,
        tokenizer: str = "",
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        max_retries: int = 0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._model = model
        # Servers started without a key still need a non-empty header value in the client.
        self._api_key = api_key or "not-needed"
        self.context_window = context_window
        self._tokenizer_path = tokenizer
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        # Celery retries transient failures with backoff; client-side retries would multiply them.
        self._max_retries = max_retries
        self._client: Any = None
        self._tokenizer: Any = None
        self._fold_system = False

    @property
    def model_name(self) -> str:
        return self._model or f"(first model at {self.base_url})"

    def _load(self) -> None:
        """Connect: a client, and the tokenizer that counts the server's tokens when one is named."""
        import openai

        if self._tokenizer_path:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self._tokenizer_path, local_files_only=True)
            except (OSError, ValueError) as exc:
                raise GeneratorUnavailable(
                    f"Cannot load the tokenizer {self._tokenizer_path!r} ({exc}): set LLM_OPTIONS "
                    "'tokenizer' to a local directory with the served model's tokenizer, or leave it empty."
                ) from exc
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=self._api_key,
            timeout=openai.Timeout(self._timeout, connect=self._connect_timeout),
            max_retries=self._max_retries,
        )

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        self.warm_up()
        if self._tokenizer is None or self._tokenizer.chat_template is None:
            return estimate_tokens(messages)
        from llm.generators.hf import chat_template_ids

        ids, self._fold_system = chat_template_ids(
            tokenizer=self._tokenizer, messages=messages, fold_system=self._fold_system
        )
        return len(ids)

    def stream(self, *, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        adapter_refuse(backend=self.backend, adapter=params.adapter)
        self.warm_up()
        return self._stream(messages, params)

    def _stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        import openai

        response: Any = None
        try:
            response = self._client.chat.completions.create(
                model=self._model or self._served_model(),
                messages=[{"role": m.role, "content": m.content} for m in messages],
                stream=True,
                max_tokens=params.max_new_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                stop=list(params.stop) or None,
            )
            for chunk in response:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except openai.APITimeoutError as exc:
            raise GenerationFailed(
                f"The model server at {self.base_url} did not answer within {self._timeout:g} s: "
                "check its load, or raise LLM_OPTIONS 'timeout'."
            ) from exc
        except openai.APIConnectionError as exc:
            raise GenerationFailed(
                f"Cannot reach the model server at {self.base_url} ({exc}): check that it is running "
                "and that LLM_OPTIONS 'base_url' points at it."
            ) from exc
        except openai.APIStatusError as exc:
            raise _status_error(exc, self.base_url) from exc
        finally:
            # Closing the HTTP response tells the server the client is gone, so it stops generating.
            if response is not None:
                response.close()

    def _served_model(self) -> str:
        """The first model the server lists, remembered: single-model servers need no configuration."""
        models = self._client.models.list().data
        if not models:
            raise GenerationFailed(f"The model server at {self.base_url} serves no model.")
        self._model = str(models[0].id)
        return self._model


def _status_error(exc: Any, base_url: str) -> Exception:
    message = str(getattr(exc, "message", exc))
    if exc.status_code == 400 and "context" in message.lower():
        return ContextOverflow(
            f"The model server at {base_url} rejected the prompt as too long ({message}): lower "
            "LLM_OPTIONS 'context_window' to the served model's real limit."
        )
    return GenerationFailed(f"The model server at {base_url} answered HTTP {exc.status_code}: {message}")
