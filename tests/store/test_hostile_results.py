"""A results folder from elsewhere is data: wrong types anywhere in it never crash a command.

The real runs of the shared results fixture are copied and a share of their JSON values (results
files, profiles, per-sample logs, routing logs) replaced by values of the wrong type: strings where
numbers go, lists and tables where text goes, NaN, huge numbers (an integer literal of 400 digits,
which no float can hold), rich markup. Every read-only command then runs on the copy; each must
finish with its tables or a one-line error, never a traceback. (Found this way: a dict as a
sample's ``doc_id`` broke ``medmoe rank``; a list as a routing log's domain broke the Routing page.)
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from medmoe_lm_eval.cli import main

WRONG = ["x", -1, 1e308, 10**400, -(10**400), None, [], {}, [1, "a"], {"a": 1}, True, "[bold red]m[/]", float("nan")]


def _mutate(value, rng: random.Random, rate: float):
    if isinstance(value, dict):
        return {k: rng.choice(WRONG) if rng.random() < rate else _mutate(v, rng, rate) for k, v in value.items()}
    if isinstance(value, list):
        return [rng.choice(WRONG) if rng.random() < rate else _mutate(v, rng, rate) for v in value]
    return value


def _mutated(text: str, rng: random.Random, rate: float) -> str:
    try:
        return json.dumps(_mutate(json.loads(text), rng, rate))
    except ValueError:  # the fixture's deliberately truncated file stays as it is
        return text


def _hostile_copy(source: Path, out: Path, seed: int, rate: float) -> Path:
    rng = random.Random(seed)
    shutil.copytree(source, out)
    for path in sorted(out.rglob("*.json")):
        path.write_text(_mutated(path.read_text(encoding="utf-8"), rng, rate), encoding="utf-8")
    for path in sorted(out.rglob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").split("\n")  # lm-eval's lines may hold U+2028: not splitlines
        path.write_text("\n".join(_mutated(line, rng, rate) if line.strip() else line for line in lines), encoding="utf-8")
    return out


@pytest.mark.parametrize(("seed", "rate"), [(1, 0.02), (2, 0.05), (3, 0.2)])
def test_every_read_only_command_survives_wrong_types_in_a_results_folder(board_results, tmp_path, capsys, seed, rate):
    root = str(_hostile_copy(board_results.root, tmp_path / "results", seed, rate))
    commands = [
        ["rank", "--results", root],
        ["rank", "--results", root, "--use-case", "chatbot", "--json"],
        ["compare", "--results", root, "tiny-bio", "moe-oracle"],
        ["compare", "--results", root, "tiny-bio", "moe-oracle", "--json"],
        ["fidelity", "--results", root],
        ["fidelity", "--results", root, "--json"],
        ["routing", "--results", root, "--candidate", "moe-oracle"],
        ["routing", "--results", root, "--candidate", "moe-oracle", "--json"],
        ["leaderboard", "--results", root, "--export", str(tmp_path / "board.html")],
    ]
    for args in commands:
        rc = main(args)  # an exception here fails the test with its traceback
        out, err = capsys.readouterr()
        assert rc in (0, 1, 2), (args, rc)
        assert "Traceback" not in out + err, args
        if rc:
            assert err.strip().count("\n") == 0 and err.strip(), (args, err)  # a failure is one line
        elif "--json" in args:  # what a script reads is standard JSON: no NaN or Infinity from the file
            json.loads(out, parse_constant=_refuse)


def _refuse(constant: str) -> None:
    raise AssertionError(f"non-standard JSON constant {constant} in --json output")


def test_every_board_page_survives_wrong_types_in_a_results_folder(board_results, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from medmoe_lm_eval.paths import leaderboard_dir

    monkeypatch.setenv("MEDMOE_RESULTS", str(_hostile_copy(board_results.root, tmp_path / "results", seed=4, rate=0.05)))
    monkeypatch.delenv("MEDMOE_USE_CASES", raising=False)
    at = AppTest.from_file(str(leaderboard_dir() / "app.py"), default_timeout=120).run()
    pages = sorted(p.name for p in (leaderboard_dir() / "pages").glob("*.py") if p.name != "__init__.py")
    assert "fidelity.py" in pages and "compare.py" in pages
    for page in pages:
        at.switch_page(f"pages/{page}").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])


def test_an_integer_literal_no_float_can_hold_reads_as_infinity():
    from medmoe_lm_eval.jsonio import loads_data

    zeros = "0" * 400
    data = loads_data(f'{{"a": 1{zeros}, "b": -1{zeros}, "c": 12, "d": 1e3}}')
    assert data == {"a": float("inf"), "b": float("-inf"), "c": 12, "d": 1000.0} and isinstance(data["c"], int)
    assert loads_data("1" + "0" * 307) == 10**307  # still a float's range: kept exact
