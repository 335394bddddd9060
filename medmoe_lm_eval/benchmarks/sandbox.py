"""Run untrusted generated Python (MBPP answers) in a contained subprocess.

Why not lm-eval's ``code_eval``: it needs the hub (``evaluate.load``) and runs model code with
``exec`` in a forked worker that inherits the evaluator's environment and filesystem. Here every
program gets its own ``python -I -B`` process, started in a new session (so a timeout kills the
whole process group), in a fresh temporary working directory, with an environment built from a
fixed allow-list (no inherited secrets such as ``HF_TOKEN``), and with these limits set by the
child on itself before any user code runs:

* ``RLIMIT_CPU`` (CPU seconds), ``RLIMIT_AS`` (address space, 1 GiB by default), ``RLIMIT_FSIZE``
  (largest file, which also caps captured stdout/stderr: they are files), ``RLIMIT_NPROC`` = 0 and
  ``RLIMIT_CORE`` = 0, plus a wall-clock timeout enforced by the parent.
* An audit hook (PEP 578) that ends the process at the first forbidden operation: opening a file
  for writing, or creating, removing, renaming or re-permissioning a path, outside the working
  directory; reading another process's ``/proc`` entry (its environment); fork/exec/spawn/
  subprocess; signals to other processes; sockets; raising resource limits; ``gc`` object walks;
  ``ctypes`` handles to process-control functions. Root ignores ``RLIMIT_NPROC`` and file
  permissions, which is why the hook, not the kernel, is what stops forks and stray writes.

A program passes only if it runs to the end and the bootstrap then prints a per-run random token
that the program never sees, so ``sys.exit(0)`` or ``os._exit(0)`` before the asserts is a failure.
This contains accidents and ordinary misbehaviour of generated code; it is not a boundary
against code written to escape it (use a container or VM for that).

The child's bootstrap is ``sandbox_child.py``, run as a script (``python -I -B sandbox_child.py
--child ...``), so it imports the standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from medmoe_lm_eval.benchmarks.sandbox_child import (
    EXIT_BLOCKED,
    EXIT_BOOTSTRAP,
    EXIT_EARLY,
    EXIT_MEMORY,
    EXIT_OUTPUT,
)

CHILD_SCRIPT = Path(__file__).with_name("sandbox_child.py")

REASONS = ("passed", "failed", "exited_early", "timeout", "memory", "output_limit", "blocked", "killed", "error")


@dataclass(frozen=True)
class Limits:
    """Per-program limits. Defaults suit MBPP-sized programs (each test runs in milliseconds)."""

    wall_s: float = 10.0
    cpu_s: int = 5
    memory_bytes: int = 1 << 30
    file_bytes: int = 1 << 20
    open_files: int = 64


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one program. ``reason`` is one of ``REASONS``; ``stderr_tail`` explains failures."""

    passed: bool
    reason: str
    returncode: int | None
    duration_s: float
    stderr_tail: str = ""


def cpu_workers() -> int:
    """CPUs this process may use (affinity-aware), never less than 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def minimal_env(workdir: str) -> dict[str, str]:
    """The child's whole environment: nothing is inherited from the evaluator."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": workdir,
        "TMPDIR": workdir,
        "PYTHONIOENCODING": "utf-8",
    }


def run_program(source: str, limits: Limits = Limits()) -> SandboxResult:
    """Run ``source`` (program + its tests) in a fresh sandboxed subprocess."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="medmoe-sandbox-", ignore_cleanup_errors=True) as root:
        work = os.path.join(root, "work")
        os.mkdir(work)
        program = os.path.join(root, "program.py")
        Path(program).write_text(source, encoding="utf-8")
        out_path, err_path = os.path.join(root, "stdout"), os.path.join(root, "stderr")
        token = secrets.token_hex(16)
        argv = [sys.executable, "-I", "-B", str(CHILD_SCRIPT), "--child", root, json.dumps(asdict(limits))]
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=err,
                    cwd=work,
                    env=minimal_env(work),
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                return SandboxResult(False, "error", None, time.monotonic() - start, f"could not start python: {exc}")
            timed_out = _feed_and_wait(proc, token, limits.wall_s)
        returncode = proc.returncode
        stdout_tail = _tail(out_path, 256)
        stderr_tail = _tail(err_path, 2000)
    reason = "timeout" if timed_out else _reason(returncode, stdout_tail, token)
    return SandboxResult(reason == "passed", reason, returncode, time.monotonic() - start, stderr_tail)


def pool_size(n_programs: int, max_workers: int | None = None) -> int:
    """Programs run at once: as asked, but never more than the CPUs or the programs."""
    return max(1, min(max_workers or cpu_workers(), cpu_workers(), n_programs))


def run_programs(sources: list[str], limits: Limits = Limits(), max_workers: int | None = None) -> list[SandboxResult]:
    """Run many programs on a small thread pool (each waits on its subprocess), in input order."""
    workers = pool_size(len(sources), max_workers)
    if workers == 1:
        return [run_program(s, limits) for s in sources]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medmoe-sandbox") as pool:
        return list(pool.map(lambda s: run_program(s, limits), sources))


# -- parent helpers -------------------------------------------------------------------------


def _feed_and_wait(proc: subprocess.Popen, token: str, wall_s: float) -> bool:
    """Send the pass token on stdin, wait; on timeout kill the whole process group."""
    try:
        assert proc.stdin is not None
        proc.stdin.write((token + "\n").encode())
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    try:
        proc.wait(timeout=wall_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    _kill_group(proc.pid)
    proc.wait()
    return timed_out


def _kill_group(pgid: int) -> None:
    """Kill whatever is left in the program's session (nothing, unless a fork slipped through)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _tail(path: str, n: int) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - n))
        return fh.read().decode("utf-8", errors="replace")


def _reason(returncode: int | None, stdout_tail: str, token: str) -> str:
    if returncode == 0:
        return "passed" if stdout_tail.rstrip().endswith(token) else "exited_early"
    if returncode is None:
        return "error"
    if returncode < 0:
        sig = -returncode
        if sig == signal.SIGXCPU:
            return "timeout"
        if sig == signal.SIGXFSZ:
            return "output_limit"
        return "killed"
    return {
        EXIT_EARLY: "exited_early",
        EXIT_MEMORY: "memory",
        EXIT_BLOCKED: "blocked",
        EXIT_BOOTSTRAP: "error",
        EXIT_OUTPUT: "output_limit",
    }.get(returncode, "failed")
