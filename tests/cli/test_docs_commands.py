"""Every command the README and ``docs/*.md`` show is checked against the code that runs it.

The commands are read out of the markdown (fenced blocks, and inline code in the prose), so a flag
renamed in code or mistyped in the docs fails here. ``medmoe`` subcommands are parsed by their own
parsers (in full when the line has no placeholder such as ``<dir>``, ``a|b`` or ``...``; otherwise
each documented flag must exist); ``lm_eval`` lines and ``medmoe eval``'s pass-through flags by
lm-eval's own ``run`` parser; ``make`` targets, ``python bench/...`` scripts and ``pip`` extras must
exist. Every subcommand's ``--help`` is run too.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib

from medmoe_lm_eval.cli import COMMANDS, _command, main

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PROGRAMS = ("medmoe", "lm_eval", "lm-eval", "make", "python", "pip", "accelerate", "torchrun")
LAUNCHERS = ("accelerate", "torchrun")
INLINE = re.compile(r"`((?:medmoe|lm_eval|lm-eval|make|accelerate|torchrun) [^`]+)`")


@dataclass(frozen=True)
class DocCommand:
    where: str  # file:line, for the failure message
    argv: tuple[str, ...]
    inline: bool = False  # quoted in prose: often a fragment (``medmoe quantize``), flags checked only

    @property
    def concrete(self) -> bool:
        """A whole shell line without placeholders: parsed in full, values and required flags included."""
        return not self.inline and not any("<" in a or "|" in a or a == "..." for a in self.argv)


def _shell_lines(text: str) -> list[tuple[int, str]]:
    """Lines of the fenced shell blocks (yaml and the like skipped), continuations joined."""
    out, fence, pending, start = [], None, "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence not in ("", "bash", "sh", "shell"):
            continue
        if not pending:
            start = number
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            out.append((start, pending.strip()))
            pending = ""
    return out


def _split(line: str) -> list[list[str]]:
    """Tokens of each command on a line: comments dropped, ``&&``/``;`` separate commands."""
    tokens = shlex.split(line, comments=True)
    commands, current = [], []
    for token in tokens:
        if token in ("&&", ";", "||"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    return [c for c in [*commands, current] if c]


def _normalise(argv: list[str]) -> list[str]:
    """``accelerate launch ... -m lm_eval ...`` -> ``lm_eval ...``; ``python -m medmoe_lm_eval`` -> ``medmoe``."""
    if argv[0] in LAUNCHERS and "-m" in argv:
        argv = ["python", *argv[argv.index("-m") :]]
    if argv[:2] == ["python", "-m"] and len(argv) > 2:
        module = argv[2]
        argv = ["medmoe" if module == "medmoe_lm_eval" else "lm_eval" if module == "lm_eval" else module, *argv[3:]]
    return ["lm_eval", *argv[1:]] if argv[0] == "lm-eval" else argv


def documented_commands() -> list[DocCommand]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        inline = [(n, m.group(1), True) for n, line in enumerate(text.splitlines(), start=1) for m in INLINE.finditer(line)]
        for number, line, quoted in [(n, line, False) for n, line in _shell_lines(text)] + inline:
            for argv in _split(line):
                if argv[0] in PROGRAMS:
                    found.append(DocCommand(f"{path.relative_to(REPO)}:{number}", tuple(_normalise(argv)), quoted))
    return found


COMMANDS_IN_DOCS = documented_commands()


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return dict(parser._option_string_actions)


def _medmoe_parser(name: str) -> argparse.ArgumentParser:
    add, _ = _command(name)
    parser = argparse.ArgumentParser(prog=f"medmoe {name}", exit_on_error=False)
    add(parser)
    return parser


def _lm_eval_run_parser() -> argparse.ArgumentParser:
    from lm_eval._cli import HarnessCLI

    subparsers = next(a for a in HarnessCLI()._parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices["run"]


def _flags(argv: tuple[str, ...] | list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in argv if a.startswith("-") and a not in ("-", "--")]


def _unknown_flags(argv: list[str], *parsers: argparse.ArgumentParser) -> list[str]:
    known = {flag for p in parsers for flag in _options(p)}
    for p in parsers:  # a subcommand's own flags (``medmoe profile show``)
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                known |= {flag for sub in action.choices.values() for flag in _options(sub)}
    return [f for f in _flags(argv) if f not in known]


def _check_medmoe(cmd: DocCommand) -> None:
    name, rest = cmd.argv[1], list(cmd.argv[2:])
    assert name in COMMANDS, f"{cmd.where}: `medmoe {name}` is not a command (choose from {', '.join(COMMANDS)})"
    parser = _medmoe_parser(name)
    parsers = [parser, _lm_eval_run_parser()] if name == "eval" else [parser]
    assert not _unknown_flags(rest, *parsers), f"{cmd.where}: `medmoe {name}` has no flag(s) {_unknown_flags(rest, *parsers)}"
    if not cmd.concrete:
        return
    if name == "eval":
        _, extra = parser.parse_known_args(rest)
        _lm_eval_run_parser().parse_args(extra)
    else:
        parser.parse_args(rest)


def _check_lm_eval(cmd: DocCommand) -> None:
    rest = list(cmd.argv[1:])
    if rest and rest[0] in ("run", "ls", "validate"):
        rest = rest[1:]
    run = _lm_eval_run_parser()
    assert not _unknown_flags(rest, run), f"{cmd.where}: lm-eval's run has no flag(s) {_unknown_flags(rest, run)}"
    if cmd.concrete:
        run.parse_args(rest)


def _check_make(cmd: DocCommand) -> None:
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(encoding="utf-8"), flags=re.M))
    assert set(cmd.argv[1:]) <= targets, f"{cmd.where}: Makefile has no target(s) {set(cmd.argv[1:]) - targets}"


def _check_other(cmd: DocCommand) -> None:
    if cmd.argv[0] == "python" and cmd.argv[1:] and cmd.argv[1].endswith(".py"):
        assert (REPO / cmd.argv[1]).is_file(), f"{cmd.where}: no script {cmd.argv[1]}"
    if cmd.argv[0] == "pip":
        extras = set(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"])
        for spec in cmd.argv[1:]:
            if spec.startswith(".["):
                wanted = set(spec[2:].rstrip("]").split(","))
                assert wanted <= extras, f"{cmd.where}: pyproject.toml has no extra(s) {wanted - extras}"


CHECKS = {"medmoe": _check_medmoe, "lm_eval": _check_lm_eval, "make": _check_make}


def test_the_docs_show_commands_of_every_kind():
    """The extraction itself works: the README's usage block and the docs' launch lines are found."""
    programs = {c.argv[0] for c in COMMANDS_IN_DOCS}
    assert {"medmoe", "lm_eval", "make"} <= programs
    shown = {c.argv[1] for c in COMMANDS_IN_DOCS if c.argv[0] == "medmoe"}
    assert {"eval", "ask", "quantize", "train-router", "eval-router", "leaderboard", "rank", "profile"} <= shown
    assert any(c.where.startswith("docs/scale-out.md") and c.argv[0] == "lm_eval" for c in COMMANDS_IN_DOCS)


@pytest.mark.parametrize("cmd", COMMANDS_IN_DOCS, ids=lambda c: f"{c.where}:{' '.join(c.argv[:2])}")
def test_documented_command_parses(cmd: DocCommand):
    CHECKS.get(cmd.argv[0], _check_other)(cmd)


def test_a_wrong_flag_in_the_docs_would_fail():
    """The checks reject what the docs once said: ``medmoe eval --adapter`` has no such flag."""
    with pytest.raises(AssertionError, match="--adapter"):
        _check_medmoe(DocCommand("x.md:1", ("medmoe", "eval", "--adapter", "dir/adapter.yaml")))
    with pytest.raises(AssertionError, match="--top_k"):
        _check_lm_eval(DocCommand("x.md:1", ("lm_eval", "--model", "medmoe", "--top_k", "2")))


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: medmoe {name}")


def test_ci_runs_the_readme_test_command_which_sets_up_the_browser_test():
    """CI is the README's ``make test``, and that target installs Chromium (or says why not) first."""
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("#")]
    assert "make test" in ci
    assert any(c.argv == ("make", "test") for c in COMMANDS_IN_DOCS if c.where.startswith("README.md"))
    rule = re.search(r"^test:(.*)$", (REPO / "Makefile").read_text(encoding="utf-8"), flags=re.M)
    assert rule and "chromium" in rule.group(1).split()
