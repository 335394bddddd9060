"""Tokenizers for a remote expert: a local HF tokenizer, or the server's own tokenize endpoints.

Exact log-likelihoods over HTTP need the continuation's token boundaries; these codecs give the
same boundaries as the server, so scores match an in-process model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from medmoe_lm_eval.harness.backends.base import BackendError

if TYPE_CHECKING:
    pass


class HFCodec:
    """The served model's HF tokenizer, loaded locally: exact token counts and cuts."""

    def __init__(self, ref: str, trust_remote_code: bool = False) -> None:
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(ref, trust_remote_code=trust_remote_code)
        self._bos_text = self.tok.bos_token

    def encode(self, text: str, add_special: bool = True) -> list[int]:
        if add_special and self._bos_text and text.startswith(self._bos_text):
            add_special = False  # HFLM: a string that already starts with BOS gets no second one
        return list(self.tok(text, add_special_tokens=add_special)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tok.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False))

    def decode_generated(self, ids: Sequence[int]) -> str:
        return str(self.tok.decode(list(ids), skip_special_tokens=True))

    @property
    def prefix_id(self) -> int:
        return self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id

    @property
    def eos_text(self) -> str | None:
        return self.tok.eos_token


class ServerCodec:
    """The server's own tokenizer over HTTP (llama-cpp-python ``/extras/*`` or vLLM ``/tokenize``)."""

    DIALECTS = ("llama-cpp-python", "vllm")

    def __init__(self, post: Callable[[str, dict[str, Any]], Any], model: str, dialect: str) -> None:
        self._post, self._model, self.dialect = post, model, dialect
        empty = self._tokenize("")
        self._bos = empty[0] if empty else None

    @classmethod
    def probe(cls, post: Callable[[str, dict[str, Any]], Any], model: str) -> ServerCodec | None:
        for dialect in cls.DIALECTS:
            try:
                return cls(post, model, dialect)
            except (BackendError, KeyError, TypeError, IndexError):
                continue
        return None

    def _tokenize(self, text: str) -> list[int]:
        if self.dialect == "llama-cpp-python":
            return [int(t) for t in self._post("/extras/tokenize", {"input": text, "model": self._model})["tokens"]]
        return [int(t) for t in self._post("/tokenize", {"model": self._model, "prompt": text})["tokens"]]

    def encode(self, text: str, add_special: bool = True) -> list[int]:
        ids = self._tokenize(text)
        if not add_special and ids and self._bos is not None and ids[0] == self._bos:
            ids = ids[1:]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        if self.dialect == "llama-cpp-python":
            return str(self._post("/extras/detokenize", {"tokens": list(ids), "model": self._model})["text"])
        return str(self._post("/detokenize", {"model": self._model, "tokens": list(ids)})["prompt"])

    decode_generated = decode

    @property
    def prefix_id(self) -> int:
        if self._bos is None:
            raise BackendError("the server's tokenizer adds no BOS token, so an empty context has no prefix; set the expert's 'tokenizer' field")
        return self._bos

    @property
    def eos_text(self) -> str | None:
        return None
