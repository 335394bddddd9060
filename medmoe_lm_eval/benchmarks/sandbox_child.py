"""The sandboxed interpreter's bootstrap: limits, the audit hook, then the program.

Run as a script by :mod:`medmoe_lm_eval.benchmarks.sandbox` (``python -I -S -B sandbox_child.py
--child ROOT SETTINGS``) before any user code, so it imports the standard library only; the parent
imports it just for the exit codes below.

Why the verdict cannot be forged from inside. There is no secret: the parent decides "passed"
from the exit status alone, which it reads with ``waitpid`` outside the program's process (with
the kernel layer, bubblewrap or ``unshare`` relays the status from outside the namespaces), and
nothing the program can print, write or read changes it. Status 0 is reached only by running off
the end of this script, which happens only when ``exec`` of the program returned normally, i.e.
after the last assert. Every other way to end the process gives a non-zero status:

* Python-level exits (``sys.exit``, ``SystemExit``, any exception) are caught by :func:`_run`,
  which maps them to constant non-zero codes using only names bound in its own frame before the
  program starts, so patching ``builtins``, ``sys`` or this module's globals changes nothing.
* The primitives that end a process with a status of the caller's choosing and raise no audit
  event (``os._exit``/``posix._exit``) are deleted before the program starts (``os._exit`` then
  raises ``SystemExit``, an early exit), together with what
  could build a fresh ``posix`` module (``_imp.create_builtin``; every built-in module is
  imported first) and the signal-handler installer (a Python handler could raise ``SystemExit(0)``
  between two of the bootstrap's own lines). The audit hook denies what could bring them back or
  step around them: ``ctypes``, the C test modules, sub-interpreters (they have no audit hooks),
  importing ``posix`` again, and ``sys.settrace``/``sys.setprofile`` (a trace function can jump
  over the asserts or rewrite the bootstrap's locals). Denial aborts the process (``SIGABRT``).
* Reading this source, the frames (``sys._getframe``, ``tb_frame``) or the heap shows only code
  and values that decide nothing.

The audit hook's checks that keep the verdict sound use only values bound in its closure when it
is made. Its path checks (writes outside the working directory) call ``os.path`` code the program
can patch, so on their own they contain accidents, not attacks; the kernel layer is what stops a
determined program from touching the filesystem, the network or other processes.
"""

from __future__ import annotations

import os
import sys

# Exit codes of the child bootstrap (the parent maps them to a reason).
EXIT_EXCEPTION = 1
EXIT_EARLY = 2
EXIT_MEMORY = 3
EXIT_BOOTSTRAP = 5
EXIT_OUTPUT = 6
#: a denied operation ends the process with this signal (the program cannot catch or ignore it)
BLOCKED_MARKER = "sandbox: blocked"

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
        "sys.settrace",
        "sys.setprofile",
        "sys._current_frames",
        "cpython.PyInterpreterState_New",
        "ctypes.dlopen",
    }
)
#: modules the program may not import: raw memory and process access, or a fresh ``posix``
_FORBIDDEN_IMPORTS = frozenset(
    {
        "posix",
        "_imp",
        "ctypes",
        "_ctypes",
        "_ctypes_test",
        "_posixsubprocess",
        "_xxsubinterpreters",
        "_testcapi",
        "_testinternalcapi",
        "_testbuffer",
        "_testmultiphase",
        "_testimportmultiple",
        "_testclinic",
        "_xxtestfuzz",
    }
)
#: functions without an audit event that end or signal processes, or bring ``_exit`` back
#: (``os._exit`` is then replaced by :func:`_early_exit`, which holds no reference to the original)
_REMOVED = {
    "posix": ("_exit", "pidfd_open"),
    "os": ("_exit", "pidfd_open"),
    "_signal": ("pidfd_send_signal",),
    "signal": ("pidfd_send_signal",),
    "_imp": ("create_builtin", "exec_builtin"),
}


def _set_limits(limits: dict) -> None:
    import resource

    cpu = int(limits["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def _disarm() -> None:
    """Import every built-in module (none can be built later), then delete the primitives."""
    for name in sys.builtin_module_names:
        __import__(name)
    for module, names in _REMOVED.items():
        for name in names:
            if module in sys.modules and hasattr(sys.modules[module], name):
                delattr(sys.modules[module], name)
    for mod in (os, sys.modules["posix"]):
        setattr(mod, "_exit", _early_exit)  # noqa: B010  (typed as read-only)
    setattr(sys.modules["_signal"], "signal", _no_handlers)  # noqa: B010


def _no_handlers(signalnum: int, handler: object) -> None:
    """Stands in for ``_signal.signal``: a Python handler could end the bootstrap with status 0."""
    raise OSError(f"sandbox: no signal handlers (signal {signalnum})")


def _early_exit(status: int) -> None:
    """Stands in for ``os._exit``: an exit before the end is an early exit, whatever the status."""
    raise SystemExit(status)


def _make_guard(writable: tuple[str, ...]):
    """The audit hook. Denial aborts at once (no exception the program could swallow)."""
    import os.path as osp

    own_proc = f"/proc/{os.getpid()}"
    write, abort = os.write, os.abort
    forbidden, forbidden_imports, path_events = _FORBIDDEN_EVENTS, _FORBIDDEN_IMPORTS, dict(_PATH_EVENTS)
    path_types, write_flags = (str, bytes, int), _WRITE_FLAGS

    def inside(path, dir_fd=None) -> bool:
        if isinstance(path, int):
            return True  # an already-open descriptor: checked when it was opened
        path = os.fsdecode(path)
        if path in (":memory:", ""):
            return True  # sqlite's in-memory database
        if isinstance(dir_fd, int) and dir_fd >= 0 and not osp.isabs(path):
            path = osp.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
        real = osp.realpath(path)
        return real == os.devnull or any(real == d or real.startswith(d + os.sep) for d in writable)

    def guard(event: str, args: tuple) -> None:
        bad: object = None
        if event in forbidden:
            bad = args[:1]
        elif event == "import":
            name = args[0]
            if type(name) is not str or name in forbidden_imports or name.split(".")[0] in forbidden_imports:
                bad = name
        elif event == "open":
            path, _mode, flags = args
            if type(path) not in path_types:
                bad = "a path that is not str, bytes or a descriptor"
            elif type(flags) is int and flags & write_flags and not inside(path):
                bad = path
            elif type(path) is not int:
                parts = osp.realpath(os.fsdecode(path)).split(os.sep)
                if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and os.sep.join(parts[:3]) != own_proc:
                    bad = path
        elif event in path_events:
            for i, fd_i in path_events[event]:
                dir_fd = args[fd_i] if fd_i is not None and fd_i < len(args) else None
                if type(args[i]) not in path_types or not inside(args[i], dir_fd):
                    bad = args[i]
        if bad is not None:
            write(2, f"\n{BLOCKED_MARKER} {event} {bad!r}\n".encode(errors="replace"))
            abort()

    return guard


def _run(code, namespace: dict) -> None:
    """Run the program; return only if it ran to the end, else raise ``SystemExit(non-zero)``.

    Everything used after ``exec`` is bound here first, before any user code: the program can
    rebind names in ``builtins`` and in this module, but not this frame's locals. After a failure
    the status is always one of the literal codes below, chosen inside a ``try`` (the program's
    exception can run code of its own when inspected), and only then raised.
    """
    base_exc, exit_exc, memory_exc, os_exc = BaseException, SystemExit, MemoryError, OSError
    run, report, is_a, attr, efbig = exec, _print_tb, isinstance, getattr, __import__("errno").EFBIG
    failure = None
    try:
        run(code, namespace)
    except base_exc as exc:  # every way out of the program other than its end is a failure
        failure = exc
    if failure is None:
        return
    status = 1  # EXIT_EXCEPTION
    try:
        if is_a(failure, exit_exc):
            status = 2  # EXIT_EARLY
        elif is_a(failure, memory_exc):
            status = 3  # EXIT_MEMORY
        elif is_a(failure, os_exc) and attr(failure, "errno", None) == efbig:
            status = 6  # EXIT_OUTPUT
        else:
            report(failure)
    except base_exc:
        pass
    raise exit_exc(status)


def _print_tb(exc: BaseException) -> None:
    """The traceback from the program's own frames (the bootstrap's frame is dropped)."""
    import traceback

    tb = exc.__traceback__.tb_next if exc.__traceback__ else None
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    os.write(2, text[-4000:].encode(errors="replace"))


def parse_settings(text: str) -> dict[str, int]:
    """``name=int,name=int`` (the parent's :func:`format_settings`; no json: its import is slow)."""
    return {name: int(value) for name, value in (item.split("=", 1) for item in text.split(",") if item)}


def format_settings(settings: dict[str, int]) -> str:
    return ",".join(f"{name}={int(value)}" for name, value in settings.items())


def _prepare(root: str, settings_text: str):
    """Read settings and program, enter the working directory, set limits; user code not yet run."""
    import builtins
    import types

    settings = parse_settings(settings_text)
    with open(os.path.join(root, "program.py"), encoding="utf-8") as fh:
        source = fh.read()
    workdir = os.path.realpath(os.path.join(root, "work"))
    os.chdir(workdir)
    _set_limits(settings)
    code = compile(source, "<program>", "exec")
    module = types.ModuleType("__sandbox__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__sandbox__"] = module
    return code, module.__dict__, (workdir,)


def _child_main(root: str, settings_text: str) -> None:
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    try:
        code, namespace, writable = _prepare(root, settings_text)
    except SyntaxError:
        import traceback

        traceback.print_exc()
        os._exit(EXIT_EXCEPTION)
    except Exception as exc:  # the sandbox itself could not start the program
        os.write(2, f"sandbox: bootstrap failed: {exc!r}\n".encode())
        os._exit(EXIT_BOOTSTRAP)
    guard = _make_guard(writable)
    _disarm()
    sys.addaudithook(guard)
    del guard
    _run(code, namespace)
    sys.stdout.flush()  # a failure here (output limit) exits 120, never 0


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--child":
    _child_main(sys.argv[2], sys.argv[3])
