"""Hostile programs against both layers of the MBPP sandbox.

Each test runs under every layer (``layer``: bwrap, unshare, then ``off`` = resource limits and the
audit hook alone). Under a kernel layer every attack fails. Under the inner layer alone the tests
assert what it does not stop, each named ``..._inner_layer_allows_...``: those are the documented
reasons results record ``sandbox_isolated``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from sandbox_layers import kernel, layer  # noqa: F401  (fixtures)

from medmoe_lm_eval.benchmarks.sandbox import Limits, run_program

FAST = Limits(wall_s=5.0, cpu_s=2)
FAILING_TAIL = "\ndef f():\n    return 1\nassert f() == 2\ndone = True\n"  # the asserts a forger must get past


# -- forged passes: must fail under every layer (the verdict has no secret) --------------------

FORGERIES = {
    "frames-rewrite-bootstrap": (  # every frame below the program: zero its exit codes and locals
        "import sys\n_fr = sys._getframe(1)\nwhile _fr is not None:\n"
        "    _g = _fr.f_globals\n    for _k in [k for k in _g if k.startswith('EXIT_')]:\n        _g[_k] = 0\n"
        "    _fr.f_locals.update({k: 0 for k in _fr.f_locals})\n    print(sorted(_fr.f_locals))\n    _fr = _fr.f_back\n"
    ),
    "traceback-frames": (
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    fr = e.__traceback__.tb_frame\n"
        "while fr is not None:\n    print({k: repr(v)[:40] for k, v in fr.f_locals.items()})\n    fr = fr.f_back\n"
    ),
    "gc-walk": "import gc\nprint(len(gc.get_objects()))\n",
    "read-bootstrap-source": "import sys\nprint(open(sys.argv[0]).read())\nprint(open('/proc/self/cmdline').read())\n",
    "sys-exit-0": "import sys\nsys.exit(0)\n",
    "os-exit-0": "import os\nos._exit(0)\n",
    "posix-exit-0": "import posix\nposix._exit(0)\n",
    "fresh-posix-import": "import sys\ndel sys.modules['posix']\nimport posix\nposix._exit(0)\n",
    "fresh-posix-builtin-importer": (
        "import sys\nimp = [m for m in sys.meta_path if m.__name__ == 'BuiltinImporter'][0]\nimp.create_module(imp.find_spec('posix'))._exit(0)\n"
    ),
    "ctypes-exit": "import ctypes\nctypes.CDLL(None)._exit(0)\n",
    "subinterpreter": "import _xxsubinterpreters as s\ns.run_string(s.create(), 'import os; os._exit(0)')\n",
    "settrace-jump": (  # jumps from the assert (line 11 once the tail is added) to the line after it
        "import sys\ndef tr(frame, event, arg):\n    if event == 'line' and frame.f_lineno == 11:\n"
        "        frame.f_lineno = 12\n    return tr\nsys._getframe().f_trace = tr\nsys.settrace(tr)\n"
    ),
    "patched-builtins": (
        "import builtins, sys\nbuiltins.SystemExit = AssertionError\nbuiltins.BaseException = ZeroDivisionError\n"
        "builtins.isinstance = lambda *a: (_ for _ in ()).throw(sys.modules['builtins'].__dict__['KeyError'])\n"
    ),
    "exception-that-exits-when-inspected": (
        "class E(OSError):\n    @property\n    def errno(self):\n        raise SystemExit(0)\n    def __str__(self):\n        raise SystemExit(0)\nraise E()\n"
    ),
    "signal-handler-exit": ("import signal, sys\nsignal.signal(signal.SIGALRM, lambda *a: sys.exit(0))\nsignal.setitimer(signal.ITIMER_REAL, 0.01)\n"),
    "own-audit-hook-exits": "import sys\nsys.addaudithook(lambda event, args: sys.exit(0) if event != 'sys.excepthook' else None)\n",
    "atexit-exit-0": "import atexit, os\natexit.register(lambda: os._exit(0))\n",
    "thread-interrupts-main": "import _thread, time\n_thread.start_new_thread(lambda: (time.sleep(0.05), _thread.interrupt_main()), ())\ntime.sleep(0.5)\n",
}


@pytest.mark.parametrize("attack", FORGERIES.values(), ids=FORGERIES.keys())
def test_forged_pass_fails(layer, attack):  # noqa: F811
    result = run_program(attack + FAILING_TAIL, FAST)
    assert not result.passed, (result.reason, result.stderr_tail)
    assert result.returncode != 0


def test_the_same_programs_pass_without_the_failing_assert(layer):  # noqa: F811
    """Control: the forgery harness can fail, since a right answer passes under each layer."""
    result = run_program("import sys\nprint(sys._getframe().f_back)\ndef f():\n    return 1\nassert f() == 1\n", FAST)
    assert (result.passed, result.reason) == (True, "passed")
    assert result.sandbox == ("rlimits+audit" if layer == "off" else "namespaces")


# -- the filesystem outside the working directory ----------------------------------------------


@pytest.fixture
def home_secret():
    """A secret file in the evaluating user's home directory (removed afterwards)."""
    secret = uuid.uuid4().hex
    path = Path.home() / f".medmoe-secret-{uuid.uuid4().hex[:8]}"
    path.write_text(secret)
    yield path, secret
    path.unlink()


def test_reading_home_fails_under_kernel_layer_inner_layer_allows_it(layer, home_secret):  # noqa: F811
    path, secret = home_secret
    program = f"import os, sys\nprint(os.listdir({str(Path.home())!r}), file=sys.stderr)\nprint(open({str(path)!r}).read(), file=sys.stderr)\n"
    result = run_program(program, FAST)
    if layer == "off":  # documented weakness: reads are not confined without namespaces
        assert result.passed and secret in result.stderr_tail
    else:
        listing = result.stderr_tail.splitlines()[0]  # the home directory as the program sees it
        assert not result.passed and secret not in result.stderr_tail and path.name not in listing


def test_writing_and_deleting_outside_fail_under_kernel_layer(layer, tmp_path):  # noqa: F811
    canary, target = tmp_path / "canary.txt", tmp_path / "written.txt"
    canary.write_text("keep me")
    plain = f"open({str(target)!r}, 'w').write('x')\n", f"import os\nos.remove({str(canary)!r})\n"
    for program in plain:  # the audit hook alone stops these (and the view does too)
        assert not run_program(program, FAST).passed
    # tamper with the hook's path check first: it calls os.path code the program can patch
    tamper = "import os, posixpath\nwd = os.getcwd()\nposixpath.realpath = lambda p, *a, **k: wd\n"
    results = [run_program(tamper + program, FAST) for program in plain]
    if layer == "off":  # documented weakness: the inner layer is Python code the program can patch
        assert all(r.passed for r in results) and target.exists() and not canary.exists()
    else:
        assert not any(r.passed for r in results) and not target.exists() and canary.read_text() == "keep me"


def test_filling_the_disk_stops_at_the_scratch_size_under_kernel_layer(layer):  # noqa: F811
    limits = Limits(wall_s=10.0, cpu_s=5, file_bytes=1 << 20, scratch_bytes=8 << 20)
    program = "n = 0\ntry:\n    for i in range(24):\n        open(f'f{i}', 'wb').write(b'x' * (1 << 20))\n        n += 1\nexcept OSError:\n    pass\nassert n == 24, n\n"
    result = run_program(program, limits)
    if layer == "off":  # documented weakness: RLIMIT_FSIZE caps each file, not their number
        assert result.passed
    else:
        assert (result.passed, result.reason) == (False, "failed") and "AssertionError: " in result.stderr_tail


# -- network, other processes ------------------------------------------------------------------


@pytest.fixture
def listener():
    """A TCP listener on the host's 127.0.0.1; ``accepted`` collects what connects to it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                accepted.append(conn.recv(64) or b"connected")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


@pytest.mark.parametrize(
    "connect",
    [
        "import socket\nsocket.create_connection(('127.0.0.1', PORT), timeout=2).sendall(b'leak')\n",
        "import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', PORT))\ns.send(b'leak')\n",
    ],
    ids=["socket", "_socket"],
)
def test_network_to_host_loopback_fails(layer, listener, connect):  # noqa: F811
    port, accepted = listener
    result = run_program(connect.replace("PORT", str(port)), FAST)
    assert not result.passed and accepted == []


@pytest.fixture
def victim():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize(
    "kill",
    [
        "import os, signal\nos.kill(VICTIM, signal.SIGKILL)\n",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
        "import os, signal\nsignal.pidfd_send_signal(os.pidfd_open(VICTIM), signal.SIGKILL)\n",
        "import os, signal\nos.killpg(0, signal.SIGKILL)\n",
    ],
    ids=["kill-pid", "kill-parent", "pidfd", "killpg"],
)
def test_killing_other_processes_fails(layer, victim, kill):  # noqa: F811
    result = run_program(kill.replace("VICTIM", str(victim.pid)), FAST)
    assert not result.passed
    assert victim.poll() is None  # still running (and so is this test process, the parent)


def test_forks_are_blocked_and_none_outlives_the_program(layer):  # noqa: F811
    marker = uuid.uuid4().hex
    program = f"import os, time\nif os.fork() == 0:\n    os.execv('/bin/sleep', ['sleep', '30', {marker!r}])\ntime.sleep(0.2)\n"
    result = run_program(program, FAST)
    assert (result.passed, result.reason) == (False, "blocked")
    assert not _processes_with(marker)


def _processes_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


# -- floods and loops --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        ("buf = bytearray(4 * 1024 ** 3)\n", "memory"),
        ("chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))\n", "memory"),
        ("print('x' * 50_000_000)\n", "output_limit"),
        ("import sys\nwhile True:\n    sys.stderr.write('y' * 4096)\n", "output_limit"),
        ("while True:\n    pass\n", "timeout"),
        ("import time\nwhile True:\n    time.sleep(1)\n", "timeout"),
    ],
    ids=["4gb", "growing", "stdout-flood", "stderr-flood", "busy-loop", "sleep-loop"],
)
def test_floods_and_loops_are_contained(layer, program, reason):  # noqa: F811
    # a short wall clock for the loops; room for the floods to reach their limit on a busy machine. The
    # growing program touches every page up to the memory limit, so a smaller one (256 MiB, not the default
    # 1 GiB) keeps page faults on a slow VM from running it into the wall clock first (seen once in 650 tests)
    floods = Limits(wall_s=10.0, cpu_s=5, memory_bytes=256 << 20) if reason == "memory" else Limits(wall_s=10.0, cpu_s=5)
    result = run_program(program, Limits(wall_s=2.0, cpu_s=1) if reason == "timeout" else floods)
    assert (result.passed, result.reason) == (False, reason)
    assert result.duration_s < 15


def test_environment_of_the_evaluator_is_not_visible(layer, monkeypatch):  # noqa: F811
    monkeypatch.setenv("MEDMOE_TEST_SECRET", "hunter2")
    result = run_program("import os\nassert 'MEDMOE_TEST_SECRET' not in os.environ\nassert not os.environ.get('HF_TOKEN')\n", FAST)
    assert result.passed
    assert os.environ["MEDMOE_TEST_SECRET"] == "hunter2"


# -- host root ---------------------------------------------------------------------------------

#: host-wide kernel settings only root may change: a write to core_pattern would run a command as
#: host root at the next crash. The program only OPENS them for writing (never writes), and passes
#: only if an open succeeds; the audit hook, whose path checks call ``posixpath.realpath``, is
#: stepped around first, so only the kernel layer stands in the way.
HOST_SETTINGS = ("/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches")
OPEN_HOST_SETTINGS = (
    "import os, posixpath\nwd = os.getcwd()\nposixpath.realpath = lambda p, *a, **k: wd\nfor path in PATHS:\n    os.close(os.open(path, os.O_WRONLY))\n"
)


def test_host_kernel_settings_cannot_be_opened_for_writing(kernel):  # noqa: F811
    for path in HOST_SETTINGS:
        result = run_program(OPEN_HOST_SETTINGS.replace("PATHS", repr((path,))), FAST)
        assert (result.passed, result.reason) == (False, "failed"), (path, result)
        assert "sandbox: blocked" not in result.stderr_tail  # the hook was stepped around: the kernel refused
        assert "Error: [Errno 13] Permission denied" in result.stderr_tail or "Error: [Errno 30] Read-only file system" in result.stderr_tail


def test_the_hook_is_stepped_around_by_the_host_settings_program(kernel):  # noqa: F811
    """Control: the same trick opens a file outside the working directory for writing (in the
    program's private /tmp), which the hook alone would stop; so the test above fails for the
    kernel's reason, not the hook's."""
    result = run_program(OPEN_HOST_SETTINGS.replace("PATHS", repr(("/tmp/opened",))).replace("os.O_WRONLY", "os.O_WRONLY | os.O_CREAT"), FAST)
    assert (result.passed, result.reason) == (True, "passed"), result.stderr_tail
    assert (run_program("import os\nos.close(os.open('/tmp/opened', os.O_WRONLY | os.O_CREAT))\n", FAST).reason) == "blocked"
