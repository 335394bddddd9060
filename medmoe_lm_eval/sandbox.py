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

This module is also the child's bootstrap (``python -I -B sandbox.py --child ...``), so its
top-level imports are standard library only.
"""

from __future__ import annotations

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

# Exit codes of the child bootstrap (the parent maps them to a reason).
EXIT_EXCEPTION = 1
EXIT_EARLY = 2
EXIT_MEMORY = 3
EXIT_BLOCKED = 4
EXIT_BOOTSTRAP = 5
EXIT_OUTPUT = 6

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
        argv = [sys.executable, "-I", "-B", os.path.abspath(__file__), "--child", root, json.dumps(asdict(limits))]
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=work,
                    env=minimal_env(work), start_new_session=True, close_fds=True,
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
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


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


# -- child side (runs as __main__ in the sandboxed interpreter) -------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
#: audit events that create, change or remove paths: (path argument, its dir_fd argument or None)
_PATH_EVENTS: dict[str, tuple[tuple[int, int | None], ...]] = {
    "os.remove": ((0, 1),), "os.rmdir": ((0, 1),), "os.mkdir": ((0, 2),), "os.rename": ((0, 2), (1, 3)),
    "os.chmod": ((0, 2),), "os.chown": ((0, 3),), "os.utime": ((0, 3),), "os.truncate": ((0, None),),
    "os.setxattr": ((0, None),), "os.removexattr": ((0, None),), "os.chflags": ((0, None),),
    "os.lchflags": ((0, None),), "shutil.rmtree": ((0, 1),), "sqlite3.connect": ((0, None),),
}
_FORBIDDEN_EVENTS = frozenset({
    "os.fork", "os.forkpty", "os.exec", "os.spawn", "os.posix_spawn", "os.system", "subprocess.Popen",
    "os.kill", "os.killpg", "os.link", "os.symlink", "os.startfile", "pty.spawn",
    "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
    "resource.setrlimit", "resource.prlimit", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
})
#: C functions that ``ctypes`` must not hand out (process control, limits, raw syscalls)
_FORBIDDEN_SYMBOLS = frozenset({
    "fork", "vfork", "clone", "clone3", "system", "popen", "execv", "execve", "execvp", "execvpe", "execl",
    "execle", "execlp", "fexecve", "posix_spawn", "posix_spawnp", "kill", "killpg", "setrlimit", "prlimit",
    "prlimit64", "syscall", "ptrace", "unshare", "setsid", "daemon", "unlink", "rename", "open", "open64",
    "openat", "creat", "fopen", "fopen64",
})


def _set_limits(limits: dict) -> None:
    import resource

    cpu = int(limits["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def _make_guard(workdir: str):
    """The audit hook. It exits at once (no exception the program could swallow)."""
    import os.path as osp

    own_proc = f"/proc/{os.getpid()}"

    def inside(path, dir_fd=None) -> bool:
        if isinstance(path, int):
            return True  # an already-open descriptor: checked when it was opened
        path = os.fsdecode(path)
        if path in (":memory:", ""):
            return True  # sqlite's in-memory database
        if isinstance(dir_fd, int) and dir_fd >= 0 and not osp.isabs(path):
            path = osp.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
        real = osp.realpath(path)
        return real == workdir or real.startswith(workdir + os.sep) or real == os.devnull

    def deny(event: str, detail: object) -> None:
        os.write(2, f"\nsandbox: blocked {event} {detail!r}\n".encode(errors="replace"))
        os._exit(EXIT_BLOCKED)

    def guard(event: str, args: tuple) -> None:
        if event == "open":
            path, _mode, flags = args
            if isinstance(flags, int) and flags & _WRITE_FLAGS and not inside(path):
                deny(event, path)
            if isinstance(path, (str, bytes)):
                real = osp.realpath(os.fsdecode(path))
                parts = real.split(os.sep)
                if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and not real.startswith(own_proc):
                    deny(event, path)
        elif event in _FORBIDDEN_EVENTS:
            deny(event, args[:1])
        elif event in _PATH_EVENTS:
            for i, fd_i in _PATH_EVENTS[event]:
                dir_fd = args[fd_i] if fd_i is not None and fd_i < len(args) else None
                if not inside(args[i], dir_fd):
                    deny(event, args[i])
        elif event == "ctypes.dlsym" and len(args) > 1 and str(args[1]) in _FORBIDDEN_SYMBOLS:
            deny(event, args[1])

    return guard


def _child_main(root: str, limits_json: str) -> None:
    import builtins
    import errno
    import types

    token = sys.stdin.readline().strip()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    try:
        limits = json.loads(limits_json)
        source = Path(root, "program.py").read_text(encoding="utf-8")
        workdir = os.path.realpath(os.path.join(root, "work"))
        os.chdir(workdir)
        _set_limits(limits)
        code = compile(source, "<program>", "exec")
    except SyntaxError:
        import traceback

        traceback.print_exc()
        os._exit(EXIT_EXCEPTION)
    except Exception as exc:  # the sandbox itself could not start the program
        os.write(2, f"sandbox: bootstrap failed: {exc!r}\n".encode())
        os._exit(EXIT_BOOTSTRAP)
    module = types.ModuleType("__sandbox__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__sandbox__"] = module
    sys.addaudithook(_make_guard(workdir))
    status = _run_user_code(code, module.__dict__, errno)
    if status == 0:
        try:
            sys.stdout.flush()
        except Exception:
            os._exit(EXIT_OUTPUT)
        os.write(1, f"\n{token}\n".encode())
    os._exit(status)


def _run_user_code(code, namespace: dict, errno) -> int:
    import traceback

    try:
        exec(code, namespace)
        return 0
    except SystemExit:
        return EXIT_EARLY
    except MemoryError:
        return EXIT_MEMORY
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            return EXIT_OUTPUT
        _print_tb(traceback, exc)
        return EXIT_EXCEPTION
    except BaseException as exc:
        _print_tb(traceback, exc)
        return EXIT_EXCEPTION


def _print_tb(traceback, exc: BaseException) -> None:
    """The traceback from the program's own frames (the bootstrap's frame is dropped)."""
    try:
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        os.write(2, text[-4000:].encode(errors="replace"))
    except Exception:
        pass


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--child":
    _child_main(sys.argv[2], sys.argv[3])
