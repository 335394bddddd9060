"""Run untrusted generated Python (MBPP answers) in a contained subprocess.

Why not lm-eval's ``code_eval``: it needs the hub (``evaluate.load``) and runs model code with
``exec`` in a forked worker that inherits the evaluator's environment and filesystem. Here every
program gets its own interpreter process (the base interpreter, ``-I -S -B``: no site-packages,
no environment variables read), started in a new session (so a timeout kills the whole process
group), with an environment built from a fixed allow-list (no inherited secrets such as
``HF_TOKEN``). Two layers contain it:

* The kernel layer (:mod:`medmoe_lm_eval.benchmarks.isolation`): bubblewrap or ``unshare``
  namespaces, a read-only view of only the interpreter, its stdlib and the system libraries, a
  private size-capped working directory and ``/tmp``, no network, an unprivileged uid (never
  host root, even for an evaluator running as root) with no capabilities and a read-only
  ``/proc``, and every process of the program killed with it. Used wherever the machine allows it.
* The inner layer, set by the child on itself before any user code runs: ``RLIMIT_CPU``,
  ``RLIMIT_AS`` (1 GiB by default), ``RLIMIT_FSIZE`` (largest file, which also caps captured
  stdout/stderr: they are files), ``RLIMIT_NPROC`` = 0, ``RLIMIT_CORE`` = 0, a wall-clock timeout
  enforced by the parent, and a PEP 578 audit hook that aborts the process at the first forbidden
  operation (writes outside the working directory, other processes' ``/proc`` entries, fork/exec,
  signals to other processes, sockets, raising limits, ``gc`` walks, trace functions, ``ctypes``).
  Alone (``MEDMOE_SANDBOX=off``, or no namespaces on this machine) it contains accidents and
  ordinary misbehaviour, not code written to escape: reading the evaluating user's files is not
  blocked, and the hook is Python code the program can partly tamper with.

A program passes only if it runs to the end: the parent reads the child's exit status, and the
bootstrap (``sandbox_child.py``) makes status 0 reachable only by returning from the program's
last line; there is no secret to steal (its docstring says why). ``sys.exit(0)`` or
``os._exit(0)`` before the asserts is a failure. Each result records which layer contained the
program (``sandbox``: ``"namespaces"`` or ``"rlimits+audit"``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from medmoe_lm_eval.benchmarks import isolation
from medmoe_lm_eval.benchmarks.isolation import Isolation, Launch
from medmoe_lm_eval.benchmarks.sandbox_child import BLOCKED_MARKER, EXIT_BOOTSTRAP, EXIT_EARLY, EXIT_MEMORY, EXIT_OUTPUT, format_settings

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
    #: size of the private working directory and of /tmp (each) under the kernel layer
    scratch_bytes: int = 64 << 20


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one program. ``reason`` is one of ``REASONS``; ``stderr_tail`` explains failures.

    ``sandbox`` says what contained it: ``"namespaces"`` (kernel layer + inner layer) or
    ``"rlimits+audit"`` (inner layer only); ``mechanism`` names the tool (``bwrap``, ``unshare``,
    ``none``).
    """

    passed: bool
    reason: str
    returncode: int | None
    duration_s: float
    stderr_tail: str = ""
    sandbox: str = isolation.INNER_ONLY
    mechanism: str = "none"

    @property
    def isolated(self) -> bool:
        return self.sandbox == isolation.KERNEL


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


def run_program(source: str, limits: Limits = Limits(), how: Isolation | None = None) -> SandboxResult:
    """Run ``source`` (program + its tests) in a fresh sandboxed subprocess.

    ``how`` defaults to :func:`isolation.current` (the ``MEDMOE_SANDBOX`` setting).
    """
    how = how or isolation.current()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="medmoe-sandbox-", ignore_cleanup_errors=True) as root:
        program, out_path, err_path = (os.path.join(root, name) for name in ("program.py", "stdout", "stderr"))
        Path(program).write_text(source, encoding="utf-8")
        for sub in ("work", "mnt"):
            os.mkdir(os.path.join(root, sub))
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = _start(how, root, limits, out, err)
            except OSError as exc:
                return SandboxResult(False, "error", None, time.monotonic() - start, f"could not start python: {exc}", how.sandbox, how.mechanism)
            timed_out = _wait(proc, limits.wall_s)
        returncode = proc.returncode
        stderr_tail = _tail(err_path, 2000)
    reason = "timeout" if timed_out else _reason(_signal_of(returncode, how), returncode, stderr_tail)
    return SandboxResult(reason == "passed", reason, returncode, time.monotonic() - start, stderr_tail, how.sandbox, how.mechanism)


def _start(how: Isolation, root: str, limits: Limits, out, err) -> subprocess.Popen:
    """Start the bootstrap, inside the namespaces when ``how`` has a kernel mechanism."""
    # the audit hook allows writes in the working directory only (TMPDIR points there), even where
    # the kernel layer also gives a private /tmp: the inner layer stays the same under both
    settings = {k: getattr(limits, k) for k in ("cpu_s", "memory_bytes", "file_bytes", "open_files")}
    if how.isolated:
        inside_root, workdir, script = isolation.ROOT_INSIDE, isolation.WORK_INSIDE, isolation.BOOTSTRAP_INSIDE
    else:
        inside_root, workdir, script = root, os.path.join(root, "work"), str(CHILD_SCRIPT)
    argv = [isolation.interpreter(), "-I", "-S", "-B", script, "--child", inside_root, format_settings(settings)]
    launch = Launch(os.path.join(root, "program.py"), str(CHILD_SCRIPT), os.path.join(root, "mnt"), limits.scratch_bytes)
    return subprocess.Popen(
        isolation.wrap(how, launch, argv),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=err,
        cwd=os.path.join(root, "work"),
        env=minimal_env(workdir),
        start_new_session=True,
        close_fds=True,
    )


def pool_size(n_programs: int, max_workers: int | None = None) -> int:
    """Programs run at once: as asked, but never more than the CPUs or the programs."""
    return max(1, min(max_workers or cpu_workers(), cpu_workers(), n_programs))


def run_programs(sources: list[str], limits: Limits = Limits(), max_workers: int | None = None, how: Isolation | None = None) -> list[SandboxResult]:
    """Run many programs on a small thread pool (each waits on its subprocess), in input order."""
    how = how or isolation.current()
    workers = pool_size(len(sources), max_workers)
    if workers == 1:
        return [run_program(s, limits, how) for s in sources]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medmoe-sandbox") as pool:
        return list(pool.map(lambda s: run_program(s, limits, how), sources))


# -- parent helpers -------------------------------------------------------------------------


def _wait(proc: subprocess.Popen, wall_s: float) -> bool:
    """Wait for the program; on timeout kill the whole process group (the namespace goes with it)."""
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


def _signal_of(returncode: int | None, how: Isolation) -> int | None:
    """The signal that ended the program: bwrap and the unshare script report it as 128 + N."""
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    if how.isolated and 128 < returncode < 128 + 65:
        return returncode - 128
    return None


def _reason(sig: int | None, returncode: int | None, stderr_tail: str) -> str:
    """Why the program ended. Only status 0 is a pass; the rest only explains the failure."""
    if returncode == 0:
        return "passed"
    if returncode is None:
        return "error"
    if sig is not None:
        if sig == signal.SIGXCPU:
            return "timeout"
        if sig == signal.SIGXFSZ:
            return "output_limit"
        return "blocked" if sig == signal.SIGABRT and BLOCKED_MARKER in stderr_tail else "killed"
    return {
        EXIT_EARLY: "exited_early",
        EXIT_MEMORY: "memory",
        EXIT_BOOTSTRAP: "error",
        EXIT_OUTPUT: "output_limit",
        120: "output_limit",  # the interpreter could not flush stdout at exit
    }.get(returncode, "failed")
