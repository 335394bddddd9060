"""Shared fixtures: tiny Llama models built locally in seconds (no hub, no GPU)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# the results folders several test packages read, built once per session (helpers in tests/support)
pytest_plugins = ["results_fixtures", "judgement_fixtures"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def _sample_texts(n: int = 400) -> list[str]:
    """Real texts from the bundled samples, to train the tiny tokenizer on."""
    from medmoe_lm_eval.paths import bundled_data_dir

    texts: list[str] = []
    for path in sorted(bundled_data_dir().glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i >= n // 4:
                    break
                texts.append(json.dumps(json.loads(line), ensure_ascii=False))
    return texts or ["The patient presented with fever and cough.", "def add(a, b):\n    return a + b"] * 50


@pytest.fixture(scope="session")
def tiny_texts() -> list[str]:
    return _sample_texts()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_texts) -> Path:
    """A random tiny Llama with its own BPE tokenizer, saved with ``save_pretrained``."""
    from medmoe_lm_eval.testing.tiny import TinySpec, build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", tiny_texts, TinySpec(seed=0))


@pytest.fixture(scope="session")
def tiny_experts(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """Three different tiny Llamas sharing one tokenizer: biomedical, legal and code experts."""
    from transformers import AutoTokenizer

    from medmoe_lm_eval.testing.tiny import TinySpec, build_model

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    out: dict[str, Path] = {}
    for seed, domain in enumerate(("biomedical", "legal", "code"), start=1):
        path = tmp_path_factory.mktemp(f"expert_{domain}") / domain
        build_model(tok, TinySpec(seed=seed)).save_pretrained(str(path))
        tok.save_pretrained(str(path))
        out[domain] = path
    return out


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_model_dir, tiny_texts) -> Path:
    """The tiny model briefly trained, so its predictions are not uniform (quantization and
    backend-parity tests need numbers that can visibly differ)."""
    from backend_fixtures import trained_copy

    return trained_copy(tiny_model_dir, tmp_path_factory.mktemp("trained") / "trained", tiny_texts)


@pytest.fixture(scope="session")
def f32_gguf(trained) -> Path:
    """``trained`` as an f32 GGUF file, written by the project's converter."""
    from medmoe_lm_eval.quantization.gguf_convert import hf_to_gguf

    return hf_to_gguf(trained, trained.parent / "trained-f32.gguf", "f32")


@pytest.fixture(scope="module")
def task_manager():
    """lm-eval's task manager with medmoe registered and the project's tasks (bundled data)."""
    from medmoe_lm_eval._lmeval_hook import register
    from medmoe_lm_eval.demo.runs import task_manager as project_task_manager

    register()
    return project_task_manager()
