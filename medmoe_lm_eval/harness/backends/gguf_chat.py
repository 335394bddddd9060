"""A GGUF file's own chat template, rendered the way transformers renders a tokenizer's.

A GGUF carries its chat template in its metadata (``tokenizer.chat_template``, named variants as
``tokenizer.chat_template.<name>``) and its special tokens as ids. llama.cpp reads both with
``vocab_only=True`` in a fraction of a second, without the weights. :class:`GGUFChatTokenizer`
offers the part of a transformers tokenizer that lm-eval's chat templating touches
(``chat_template``, ``special_tokens_map``, ``apply_chat_template(..., tokenize=False)``) and
renders with transformers' own jinja renderer and the same template variables, so a GGUF and the
transformers checkpoint it came from turn one conversation into the same prompt text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medmoe_lm_eval.harness.backends.base import BackendError

TEMPLATE_KEY = "tokenizer.chat_template"
#: transformers' special-token names -> the GGUF metadata key holding each one's id
SPECIAL_IDS = {
    "bos_token": "tokenizer.ggml.bos_token_id",
    "eos_token": "tokenizer.ggml.eos_token_id",
    "unk_token": "tokenizer.ggml.unknown_token_id",
    "pad_token": "tokenizer.ggml.padding_token_id",
}


class GGUFChatTokenizer:
    """The chat-templating face of a GGUF's tokenizer (no weights loaded)."""

    def __init__(self, name_or_path: str, chat_template: str | dict[str, str] | None, special_tokens_map: dict[str, str]) -> None:
        self.name_or_path = name_or_path
        self.chat_template = chat_template
        self.special_tokens_map = special_tokens_map

    def apply_chat_template(
        self,
        conversation: list[dict[str, Any]],
        tokenize: bool = False,
        add_generation_prompt: bool = False,
        continue_final_message: bool = False,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> str:
        """``PreTrainedTokenizerBase.apply_chat_template(..., tokenize=False)`` for one conversation."""
        from transformers.utils.chat_template_utils import render_jinja_template

        if tokenize:
            raise ValueError("a GGUF chat template renders text only (tokenize=False); llama.cpp tokenizes it")
        template = self._select(chat_template)
        messages = [{k: v for k, v in message.items() if v is not None} for message in conversation]
        rendered: Any = render_jinja_template(  # (texts, generation indices), whatever its annotation says
            conversations=[messages],
            chat_template=template,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            **{**self.special_tokens_map, **kwargs},
        )
        return rendered[0][0]

    def _select(self, name: str | None) -> str:
        """The default template, or the one named (transformers' rules for a dict of templates)."""
        templates = self.chat_template
        if isinstance(templates, dict):
            if name is not None and name in templates:
                return templates[name]
            if "default" in templates:
                return templates["default"]
            raise ValueError(f"{self.name_or_path} has several chat templates and none is named 'default': {sorted(templates)}")
        if templates is None:
            raise ValueError(f"{self.name_or_path} carries no chat template ({TEMPLATE_KEY} is missing)")
        return name if name is not None else templates  # as transformers: a string passed in is the template itself


def _templates(metadata: dict[str, str]) -> str | dict[str, str] | None:
    """``tokenizer.chat_template`` alone, or a dict with its named variants (``default`` = the plain one)."""
    named = {key.removeprefix(f"{TEMPLATE_KEY}."): value for key, value in metadata.items() if key.startswith(f"{TEMPLATE_KEY}.")}
    plain = metadata.get(TEMPLATE_KEY)
    if not named:
        return plain
    return {**({"default": plain} if plain else {}), **named}


def read_chat_tokenizer(path: str | Path, expert: str) -> GGUFChatTokenizer:
    """The chat template and special tokens of the GGUF at ``path`` (llama.cpp's vocabulary only)."""
    import llama_cpp

    try:
        vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError, OSError) as exc:
        raise BackendError(f"expert '{expert}': llama.cpp could not read the vocabulary of {path}: {exc}; point 'model' at a valid .gguf file") from None
    try:
        metadata = dict(vocab.metadata)
        special = {}
        for name, key in SPECIAL_IDS.items():
            if key in metadata and int(metadata[key]) >= 0:
                special[name] = vocab.detokenize([int(metadata[key])], special=True).decode("utf-8", errors="replace")
    finally:
        vocab.close()
    return GGUFChatTokenizer(str(path), _templates(metadata), special)
