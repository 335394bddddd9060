"""``--apply_chat_template`` (with ``--fewshot_as_multiturn``, ``--system_instruction``) for ``medmoe``.

Instruct models are run by their users through their chat template, so lm-eval's chat options
must do for ``--model medmoe`` exactly what they do for ``--model hf``. lm-eval renders every
prompt before the model sees a request: it asks the LM for its template (``chat_template``,
recorded in the results and in the comparability key) and for each conversation's text
(``apply_chat_template``). Both are answered here by lm-eval's own ``HFLM`` and ``TemplateLM``
methods, run on the template expert's tokenizer, so the same tokenizer gives the same prompt
text, character for character, as ``--model hf`` would.

One template serves the whole candidate, since a prompt is rendered once, before routing: the
template of the first expert in the adapter that carries one (an hf expert's tokenizer, a gguf
expert's own file metadata, a remote expert's ``tokenizer``). The run records whose it was
(``config.medmoe.chat_template``). Only the tokenizer is read, never the weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from medmoe_lm_eval.harness.backends.base import BackendError
from medmoe_lm_eval.harness.config import ConfigError

if TYPE_CHECKING:
    from medmoe_lm_eval.harness.config import AdapterConfig


@dataclass(frozen=True)
class TemplateSource:
    """Whose chat template a candidate uses, and the tokenizer (or GGUF stand-in) that renders it."""

    expert: str
    source: str  #: ``tokenizer`` (transformers) or ``gguf`` (the file's metadata)
    tokenizer: Any

    def record(self) -> dict[str, str]:
        return {"expert": self.expert, "source": self.source, "tokenizer": str(getattr(self.tokenizer, "name_or_path", ""))}


def _tokenizer_of(spec: Any) -> TemplateSource | None:
    """The expert's tokenizer if its model family has one to read (None: a remote expert without one)."""
    if spec.backend == "gguf":
        from medmoe_lm_eval.harness.backends.gguf import GGUFBackend
        from medmoe_lm_eval.harness.backends.gguf_chat import read_chat_tokenizer

        return TemplateSource(spec.name, "gguf", read_chat_tokenizer(GGUFBackend(spec)._model_path(), spec.name))
    ref = spec.tokenizer or (spec.model if spec.backend == "hf" else None)
    if ref is None:
        return None
    from transformers import AutoTokenizer

    revision = (spec.revision or "main") if spec.backend == "hf" and not spec.tokenizer else None
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref, revision=revision, trust_remote_code=spec.trust_remote_code)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise BackendError(f"expert '{spec.name}': could not read the tokenizer of {ref} for its chat template: {type(exc).__name__}: {first}") from None
    return TemplateSource(spec.name, "tokenizer", tokenizer)


def template_source(cfg: AdapterConfig) -> TemplateSource:
    """The first expert (adapter order) whose tokenizer carries a chat template."""
    looked: list[str] = []
    for spec in cfg.experts:
        found = _tokenizer_of(spec)
        if found is not None and getattr(found.tokenizer, "chat_template", None):
            return found
        looked.append(spec.name)
    raise ConfigError(
        cfg.name,
        "experts",
        f"no expert carries a chat template (looked at {', '.join(looked)}) but --apply_chat_template was given",
        "run without --apply_chat_template, or list first an expert whose tokenizer or GGUF file has one",
    )


class ChatTemplating:
    """lm-eval's chat-template interface for an LM with an adapter config (``self.cfg``)."""

    cfg: AdapterConfig
    _template_source: TemplateSource | None = None

    @property
    def template_source(self) -> TemplateSource:
        if self._template_source is None:
            self._template_source = template_source(self.cfg)
        return self._template_source

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        """The template lm-eval records, chosen by ``TemplateLM``'s own rules (a name picks one of several)."""
        from lm_eval.api.model import TemplateLM

        if chat_template is False or chat_template is None:
            return None
        return TemplateLM.chat_template(SimpleNamespace(tokenizer=self.template_source.tokenizer), chat_template)

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """One conversation as prompt text: ``HFLM.apply_chat_template`` itself, on the template expert's tokenizer."""
        from lm_eval.models.huggingface import HFLM

        shim = SimpleNamespace(tokenizer=self.template_source.tokenizer, chat_template_args={})
        return HFLM.apply_chat_template(shim, chat_history, add_generation_prompt)

    def chat_record(self) -> dict[str, str] | None:
        """Whose template rendered this run's prompts (``None``: no chat template was used)."""
        return self._template_source.record() if self._template_source is not None else None
