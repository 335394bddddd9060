"""A results folder from elsewhere that attacks its reader: nesting bombs, and entries that are not
regular files inside it (links leading out, devices, named pipes, dangling links).

Each hostile entry sits in a copy of the shared real results folder; every read-only command runs
on it in its own process, under a time limit (a named pipe opened blocking would hang it), and must
finish with its tables, naming each hostile entry in one warning line. The board's pages run on it
too (a dangling link used to crash every page through ``os.stat``).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAMP = "2026-05-01T00-00-00.000000"
DEEP = "[" * 100_000 + "]" * 100_000


def medmoe(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "medmoe_lm_eval", *args], capture_output=True, text=True, timeout=300, env=env)


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"k": value}
    return value


def _latest(root: Path, candidate: str) -> Path:
    return sorted((root / candidate).glob("results_*.json"))[-1]


def _samples(results_file: Path) -> list[Path]:
    stamp = results_file.name.removeprefix("results_").removesuffix(".json")
    return sorted(results_file.parent.glob(f"samples_*_{stamp}.jsonl"))


def _warnings_naming(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if name in line]


def test_nesting_bombs_are_one_warning_each_and_skipped(board_results, tmp_path):
    root = Path(shutil.copytree(board_results.root, tmp_path / "results"))
    bomb = root / "bomb" / f"results_{STAMP}.json"
    bomb.parent.mkdir()
    bomb.write_text(DEEP)  # 100,000 levels: past Python's recursion limit
    data = json.loads(_latest(root, "tiny-bio").read_text(encoding="utf-8"))
    data["config"]["medmoe"]["candidate"] = "deep-150"
    data["config"]["extra"] = _nested(150)  # parses, yet deeper than any results file is
    shallow_bomb = root / "deep-150" / f"results_{STAMP}.json"
    shallow_bomb.parent.mkdir()
    shallow_bomb.write_text(json.dumps(data))
    line_bomb = _samples(_latest(root, "moe-oracle"))[0]
    with line_bomb.open("a", encoding="utf-8") as fh:
        fh.write('{"doc_id": 0, "doc_hash": "x", "acc": ' + DEEP + "}\n")

    rank = medmoe("rank", "--results", str(root), "--use-case", "research")
    assert rank.returncode == 0 and "Traceback" not in rank.stdout + rank.stderr, rank.stderr[-2000:]
    for path in (bomb, shallow_bomb):
        (warning,) = _warnings_naming(rank.stdout, str(path))
        assert "nested deeper than 100 levels; skipped" in warning
    assert "deep-150" not in rank.stdout.replace(str(shallow_bomb), "")
    assert f"{line_bomb}: 1 malformed per-sample line(s) skipped" in rank.stdout

    compare = medmoe("compare", "--results", str(root), "tiny-bio", "moe-oracle")
    assert compare.returncode == 0 and "Traceback" not in compare.stdout + compare.stderr, compare.stderr[-2000:]
    assert _warnings_naming(compare.stdout, "1 malformed per-sample line(s) skipped")


@pytest.fixture
def trap_folder(board_results, tmp_path) -> tuple[Path, dict[str, str]]:
    """A copy of the folder with one hostile entry of each kind: {entry name: the reason it is skipped}."""
    root = Path(shutil.copytree(board_results.root, tmp_path / "results"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data = json.loads(_latest(root, "tiny-bio").read_text(encoding="utf-8"))
    data["config"]["medmoe"]["candidate"] = "sneaky-outside"
    (elsewhere / "results.json").write_text(json.dumps(data))
    traps = {
        "outside-link": "a link leading outside the results folder",
        "dev-zero-link": "a link leading outside the results folder",
        "named-pipe": "not a regular file (a named pipe)",
        "dangling": "a dangling link",
    }
    for name in traps:
        (root / name).mkdir()
    entry = f"results_{STAMP}.json"
    (root / "outside-link" / entry).symlink_to(elsewhere / "results.json")
    (root / "dev-zero-link" / entry).symlink_to("/dev/zero")
    os.mkfifo(root / "named-pipe" / entry)
    (root / "dangling" / entry).symlink_to(root / "dangling" / "gone.json")
    if os.geteuid() == 0:  # a device node inside the folder itself
        (root / "device").mkdir()
        os.mknod(root / "device" / entry, stat.S_IFCHR | 0o644, os.makedev(1, 5))
        traps["device"] = "not a regular file (a device)"
    bio_samples, oracle_samples = _samples(_latest(root, "tiny-bio"))[0], _samples(_latest(root, "moe-oracle"))[0]
    shutil.move(bio_samples, elsewhere / bio_samples.name)
    bio_samples.symlink_to(elsewhere / bio_samples.name)
    oracle_samples.unlink()
    os.mkfifo(oracle_samples)
    traps[bio_samples.name] = "per-sample log {} skipped: a link leading outside the results folder"
    traps[oracle_samples.name] = "per-sample log {} skipped: not a regular file (a named pipe)"
    return root, traps


def test_entries_that_are_not_regular_files_inside_are_skipped_unopened(trap_folder, tmp_path):
    root, traps = trap_folder
    commands = {
        "rank": ["rank", "--results", str(root), "--use-case", "research"],
        "compare": ["compare", "--results", str(root), "tiny-bio", "moe-oracle"],
        "fidelity": ["fidelity", "--results", str(root)],
        "routing": ["routing", "--results", str(root), "--candidate", "moe-oracle"],
        "export": ["leaderboard", "--results", str(root), "--export", str(tmp_path / "board.html")],
    }
    outputs = {}
    for name, args in commands.items():
        proc = medmoe(*args)  # a blocking open of a pipe would run into the time limit here
        assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, (name, proc.stderr[-2000:])
        outputs[name] = proc.stdout + proc.stderr
    assert "sneaky-outside" not in outputs["rank"] and "sneaky-outside" not in (tmp_path / "board.html").read_text(encoding="utf-8")
    for entry, reason in traps.items():
        if entry.startswith("samples_"):
            (line,) = _warnings_naming(outputs["rank"], reason.format(entry))
        else:
            path = str(root / entry / f"results_{STAMP}.json")
            for name in ("rank", "export"):
                (line,) = _warnings_naming(outputs[name], path)
                assert line.endswith(f"{path}: {reason}; skipped"), line
    # compare prints no reading warnings: the tiny-bio log that leads outside is simply not paired
    (bio_task,) = [e.split("_")[1] + "_" + e.split("_")[2] for e in traps if "link leading outside" in traps[e] and e.startswith("samples_")]
    assert f"{bio_task}: paired comparisons need --log_samples" in outputs["compare"]


def test_every_board_page_survives_entries_that_are_not_regular_files(trap_folder, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from medmoe_lm_eval.paths import leaderboard_dir

    root, _ = trap_folder
    monkeypatch.setenv("MEDMOE_RESULTS", str(root))
    monkeypatch.delenv("MEDMOE_USE_CASES", raising=False)
    at = AppTest.from_file(str(leaderboard_dir() / "app.py"), default_timeout=120).run()
    pages = sorted(p.name for p in (leaderboard_dir() / "pages").glob("*.py") if p.name != "__init__.py")
    for page in pages:
        at.switch_page(f"pages/{page}").run()
        assert not at.exception, (page, [e.value for e in at.exception])
