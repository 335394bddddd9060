"""The MBPP sandbox: real subprocesses running misbehaving programs, each contained and failed."""

from __future__ import annotations

import os
import uuid

import pytest

from medmoe_lm_eval import settings
from medmoe_lm_eval.benchmarks.sandbox import REASONS, Limits, cpu_workers, minimal_env, pool_size, run_program, run_programs

FAST = Limits(wall_s=3.0, cpu_s=1)


def test_passing_program_passes():
    result = run_program("def add(a, b):\r\n    return a + b\r\nassert add(2, 3) == 5\n", FAST)
    assert (result.passed, result.reason, result.returncode) == (True, "passed", 0)


def test_failing_assert_fails_with_traceback():
    result = run_program("def add(a, b):\n    return a * b\nassert add(2, 3) == 5, 'wrong sum'\n", FAST)
    assert (result.passed, result.reason) == (False, "failed")
    assert "AssertionError: wrong sum" in result.stderr_tail
    assert "sandbox.py" not in result.stderr_tail  # only the program's own frames


def test_syntax_error_fails():
    result = run_program("def f(:\n    pass\n", FAST)
    assert (result.passed, result.reason) == (False, "failed")
    assert "SyntaxError" in result.stderr_tail


def test_infinite_loop_hits_cpu_limit():
    result = run_program("while True:\n    pass\n", FAST)
    assert (result.passed, result.reason) == (False, "timeout")


def test_sleeping_program_hits_wall_clock_and_is_killed():
    result = run_program("import time\ntime.sleep(60)\n", Limits(wall_s=1.0, cpu_s=1))
    assert (result.passed, result.reason) == (False, "timeout")
    assert result.duration_s < 30  # killed, not waited for


@pytest.mark.parametrize(
    "program",
    [
        "import os\nwhile True:\n    os.fork()\n",
        "import subprocess\nsubprocess.run(['true'])\n",
        "import os\nos.system('true')\n",
        "import multiprocessing as mp\np = mp.Process(target=print)\np.start()\np.join()\n",
        "import ctypes\nctypes.CDLL(None).fork()\n",
    ],
    ids=["fork-bomb", "subprocess", "os-system", "multiprocessing", "ctypes-fork"],
)
def test_process_creation_is_blocked(program):
    result = run_program(program, FAST)
    assert (result.passed, result.reason) == (False, "blocked")
    assert "sandbox: blocked" in result.stderr_tail


def test_4gb_allocation_is_contained():
    result = run_program("buf = bytearray(4 * 1024 ** 3)\nassert len(buf) > 0\n", FAST)
    assert (result.passed, result.reason) == (False, "memory")


def test_write_outside_temp_dir_is_blocked(tmp_path):
    target = tmp_path / f"escape-{uuid.uuid4().hex}.txt"
    for program in (
        f"open({str(target)!r}, 'w').write('x')\n",
        "open('../escape.txt', 'w').write('x')\n",
        f"import os\nos.mkdir({str(tmp_path / 'newdir')!r})\n",
        f"import os\nos.rename({str(tmp_path)!r}, {str(tmp_path) + '-moved'!r})\n",
    ):
        result = run_program(program, FAST)
        assert (result.passed, result.reason) == (False, "blocked"), program
    assert not target.exists() and not (tmp_path / "newdir").exists() and tmp_path.exists()


def test_files_inside_temp_dir_are_allowed():
    program = (
        "import os, shutil, tempfile\n"
        "open('notes.txt', 'w').write('ok')\n"
        "os.makedirs('a/b')\nopen('a/b/c.txt', 'w').close()\nshutil.rmtree('a')\n"
        "with tempfile.NamedTemporaryFile() as fh:\n    fh.write(b'x')\n"
        "assert open('notes.txt').read() == 'ok'\n"
    )
    assert run_program(program, FAST).passed


def test_environment_secrets_are_not_visible(monkeypatch):
    monkeypatch.setenv("MEDMOE_TEST_SECRET", "hunter2")
    seen = run_program("import os\nassert os.environ.get('MEDMOE_TEST_SECRET') == 'hunter2'\n", FAST)
    assert (seen.passed, seen.reason) == (False, "failed")
    absent = run_program("import os\nassert 'MEDMOE_TEST_SECRET' not in os.environ\nassert 'HF_TOKEN' not in os.environ\n", FAST)
    assert absent.passed
    parent = run_program("import os\nprint(open(f'/proc/{os.getppid()}/environ').read())\n", FAST)
    assert (parent.passed, parent.reason) == (False, "blocked")
    assert "hunter2" not in parent.stderr_tail
    assert "MEDMOE_TEST_SECRET" not in minimal_env("/tmp/x")


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)", "import os\nos._exit(0)", "raise SystemExit"])
def test_exit_before_asserts_is_not_a_pass(exit_call):
    result = run_program(f"def f():\n    return 1\n{exit_call}\nassert f() == 2\n", FAST)
    assert (result.passed, result.reason) == (False, "exited_early")


@pytest.mark.parametrize("program", ["print('x' * 50_000_000)\n", "while True:\n    print('y' * 1000)\n"], ids=["one-huge-line", "endless"])
def test_huge_output_is_capped(program):
    result = run_program(program, Limits(wall_s=5.0, cpu_s=2, file_bytes=1 << 20))
    assert (result.passed, result.reason) == (False, "output_limit")


def test_network_is_blocked():
    result = run_program("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n", FAST)
    assert (result.passed, result.reason) == (False, "blocked")


def test_run_continues_after_misbehaving_programs():
    good = "assert sorted([3, 1, 2]) == [1, 2, 3]\n"
    bad = ["while True:\n    pass\n", "import os\nos.fork()\n", "x = bytearray(4 * 1024 ** 3)\n", "import sys\nsys.exit(0)\n"]
    results = run_programs([good, *bad, good], FAST)
    assert [r.reason for r in results] == ["passed", "timeout", "blocked", "memory", "exited_early", "passed"]
    assert all(r.reason in REASONS and r.passed == (r.reason == "passed") for r in results)


def test_pool_never_exceeds_cpu_count():
    assert pool_size(100, max_workers=1000) == cpu_workers()
    assert pool_size(1, max_workers=8) == 1
    assert pool_size(5, max_workers=1) == 1
    assert 1 <= cpu_workers() <= (os.cpu_count() or 1)


@pytest.mark.slow
@pytest.mark.parametrize(("setting", "isolated"), [("off", 0.0), ("auto", None)])
def test_results_file_records_whether_programs_were_isolated(monkeypatch, setting, isolated):
    """A real lm-eval run: ``sandbox_isolated`` is the share of programs run in namespaces."""
    import lm_eval
    from lm_eval.tasks import TaskManager
    from scripted_lm import ScriptedLM

    from medmoe_lm_eval.benchmarks import isolation
    from medmoe_lm_eval.paths import tasks_dir

    monkeypatch.setenv(settings.SANDBOX.name, setting)
    expected = isolated if isolated is not None else float(isolation.current().isolated)
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata={"medmoe_data": "bundled"})
    results = lm_eval.simple_evaluate(
        model=ScriptedLM(manager, "gold"), tasks=["medmoe_mbpp"], task_manager=manager, limit=3, confirm_run_unsafe_code=True, bootstrap_iters=0
    )
    scores = results["results"]["medmoe_mbpp"]
    assert scores["pass_at_1,extract_code"] == 1.0
    assert scores["sandbox_isolated,extract_code"] == expected
    assert [s["sandbox_isolated"] for s in results["samples"]["medmoe_mbpp"]] == [expected] * 3
