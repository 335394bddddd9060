"""The sandboxed interpreter's bootstrap: limits, the audit hook, then the program.

Run as a script by :mod:`medmoe_lm_eval.benchmarks.sandbox` (``python -I -B sandbox_child.py
--child ROOT LIMITS``) before any user code, so it imports the standard library only; the parent
imports it just for the exit codes below.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# Exit codes of the child bootstrap (the parent maps them to a reason).
EXIT_EXCEPTION = 1
EXIT_EARLY = 2
EXIT_MEMORY = 3
EXIT_BLOCKED = 4
EXIT_BOOTSTRAP = 5
EXIT_OUTPUT = 6


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
#: audit events that create, change or remove paths: (path argument, its dir_fd argument or None)
_PATH_EVENTS: dict[str, tuple[tuple[int, int | None], ...]] = {
    "os.remove": ((0, 1),),
    "os.rmdir": ((0, 1),),
    "os.mkdir": ((0, 2),),
    "os.rename": ((0, 2), (1, 3)),
    "os.chmod": ((0, 2),),
    "os.chown": ((0, 3),),
    "os.utime": ((0, 3),),
    "os.truncate": ((0, None),),
    "os.setxattr": ((0, None),),
    "os.removexattr": ((0, None),),
    "os.chflags": ((0, None),),
    "os.lchflags": ((0, None),),
    "shutil.rmtree": ((0, 1),),
    "sqlite3.connect": ((0, None),),
}
_FORBIDDEN_EVENTS = frozenset(
    {
        "os.fork",
        "os.forkpty",
        "os.exec",
        "os.spawn",
        "os.posix_spawn",
        "os.system",
        "subprocess.Popen",
        "os.kill",
        "os.killpg",
        "os.link",
        "os.symlink",
        "os.startfile",
        "pty.spawn",
        "socket.connect",
        "socket.bind",
        "socket.sendto",
        "socket.sendmsg",
        "socket.getaddrinfo",
        "resource.setrlimit",
        "resource.prlimit",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
    }
)
#: C functions that ``ctypes`` must not hand out (process control, limits, raw syscalls)
_FORBIDDEN_SYMBOLS = frozenset(
    {
        "fork",
        "vfork",
        "clone",
        "clone3",
        "system",
        "popen",
        "execv",
        "execve",
        "execvp",
        "execvpe",
        "execl",
        "execle",
        "execlp",
        "fexecve",
        "posix_spawn",
        "posix_spawnp",
        "kill",
        "killpg",
        "setrlimit",
        "prlimit",
        "prlimit64",
        "syscall",
        "ptrace",
        "unshare",
        "setsid",
        "daemon",
        "unlink",
        "rename",
        "open",
        "open64",
        "openat",
        "creat",
        "fopen",
        "fopen64",
    }
)


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
