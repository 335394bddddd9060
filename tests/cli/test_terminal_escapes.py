"""Names from a results folder never drive the terminal: control sequences are printed as text.

A copy of the shared real results folder gets a candidate, a task, a metric, a routing domain, a
parent and a profile field holding ESC/CSI/OSC sequences (clear the screen, move the cursor, set
the window title to FAKE-WINNER), a C1 CSI, a bell, a backspace and a carriage return. Every command
that prints a results folder runs on it in its own process, once into a pipe and once on a
pseudo-terminal (where rich colours its tables): the only escape sequences that reach the output are
rich's own colours, and each payload shows up in its visible form.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from commands import on_a_terminal

REPO = Path(__file__).resolve().parents[2]
PAYLOAD = "\x1b[2J\x1b[H\x1b]0;FAKE-WINNER\x07\x9b2J\x08\r!"
SHOWN = "\\u001b[2J\\u001b[H\\u001b]0;FAKE-WINNER"  # how the payload reads once escaped (rich's Text drops BEL, BS and CR)
ORACLE = "moe-oracle" + PAYLOAD
SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's colours on a terminal
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


def _renamed(text: str) -> str:
    for old, new in (("moe-oracle", ORACLE), ("lbfx_law", "lbfx_law" + PAYLOAD), ("acc,none", "acc" + PAYLOAD + ",none"), ("legal", "legal" + PAYLOAD)):
        text = text.replace(json.dumps(old), json.dumps(new))
    return text


@pytest.fixture(scope="module")
def hostile_names(board_results, tmp_path_factory) -> tuple[Path, Path]:
    """(results folder, a results file with a profile) with control sequences in their names."""
    root = Path(shutil.copytree(board_results.root, tmp_path_factory.mktemp("escapes") / "results"))
    for path in [*root.rglob("*.json"), *root.rglob("*.jsonl")]:
        path.write_text(_renamed(path.read_text(encoding="utf-8")), encoding="utf-8")
    keywords = sorted((root / "moe-keywords").glob("results_*.json"))[-1]
    data = json.loads(keywords.read_text(encoding="utf-8"))
    data["config"]["medmoe"]["adapter"]["parent"] = ORACLE  # a copy and its parent: fidelity prints both names
    keywords.write_text(json.dumps(data), encoding="utf-8")
    oracle = sorted((root / "moe-oracle").glob("results_*.json"))[-1]
    data = json.loads(oracle.read_text(encoding="utf-8"))
    data["config"]["medmoe_profile"]["hardware"]["cpu_model"] = "cpu" + PAYLOAD
    oracle.write_text(json.dumps(data), encoding="utf-8")
    return root, oracle


def _commands(root: Path, profiled: Path) -> dict[str, list[str]]:
    r = str(root)
    return {
        "rank": ["rank", "--results", r],
        "rank --json": ["rank", "--results", r, "--use-case", "research", "--json"],
        "compare": ["compare", "--results", r, "moe-keywords", ORACLE],
        "compare --json": ["compare", "--results", r, "moe-keywords", ORACLE, "--json"],
        "fidelity": ["fidelity", "--results", r],
        "routing": ["routing", "--results", r, "--candidate", ORACLE],
        "profile show": ["profile", "show", str(profiled)],
    }


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "250"}
    env.pop("NO_COLOR", None)
    return env


def _strings(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {s for v in value.values() for s in _strings(v)}
    if isinstance(value, list):
        return {s for v in value for s in _strings(v)}
    return {value} if isinstance(value, str) else set()


def _on_a_terminal(args: list[str]) -> str:
    return on_a_terminal([sys.executable, "-m", "medmoe_lm_eval", *args], _env(), columns=250)


def test_control_sequences_from_a_results_folder_are_printed_as_text(hostile_names):
    root, profiled = hostile_names
    for name, args in _commands(root, profiled).items():
        piped = subprocess.run([sys.executable, "-m", "medmoe_lm_eval", *args], capture_output=True, text=True, timeout=300, env=_env())
        assert piped.returncode == 0 and "Traceback" not in piped.stderr, (name, piped.stderr[-2000:])
        output = piped.stdout + piped.stderr
        assert not CONTROL.findall(output), (name, sorted(set(CONTROL.findall(output))))
        if name.endswith("--json"):  # standard JSON: the escaped form reads back as the very name
            assert ORACLE in _strings(json.loads(piped.stdout)), name
        else:
            assert SHOWN in output and "\\u009b2J" in output, (name, output[-3000:])
        terminal = _on_a_terminal(args)
        assert "\x1b[" in terminal or name.endswith("--json"), name  # rich did colour it: a real terminal
        rest = SGR.sub("", terminal).replace("\r\n", "\n")
        assert not CONTROL.findall(rest), (name, sorted(set(CONTROL.findall(rest))))
        assert SHOWN in rest or name.endswith("--json"), (name, rest[-3000:])
