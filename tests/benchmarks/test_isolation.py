"""The kernel layer on its own: a plain interpreter (no bootstrap, no audit hook) in the namespaces.

These show that each mechanism stops the attacks without help from the inner layer: the program
here could do anything Python allows, yet it cannot see the evaluator's files, reach the host's
loopback, signal host processes or leave processes behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sandbox_layers import kernel  # noqa: F401  (fixture)
from test_sandbox_hostile import _processes_with, home_secret, listener, victim  # noqa: F401  (fixtures)

from medmoe_lm_eval import settings
from medmoe_lm_eval.benchmarks import isolation
from medmoe_lm_eval.benchmarks.isolation import Isolation, Launch


def _run_bare(mechanism: str, tmp_path: Path, code: str, timeout: float = 20) -> subprocess.CompletedProcess:
    """Run ``code`` with a plain ``python -I -S`` inside the namespaces of ``mechanism``."""
    program, mnt = tmp_path / "program.py", tmp_path / "mnt"
    program.write_text("")
    mnt.mkdir(exist_ok=True)
    launch = Launch(str(program), str(program), str(mnt), 8 << 20)
    argv = isolation.wrap(Isolation(mechanism), launch, [isolation.interpreter(), "-I", "-S", "-c", code])
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={"PATH": os.defpath}, cwd=tmp_path)


def test_view_holds_only_python_and_libraries(kernel, tmp_path, home_secret):  # noqa: F811
    path, secret = home_secret
    code = (
        f"import os, sys\nprint(sorted(os.listdir('/')))\nprint(sorted(os.listdir({str(path.parent)!r})) if os.path.isdir({str(path.parent)!r}) else [])\n"
        f"print(os.path.exists({str(path)!r}), os.path.exists({str(Path.cwd())!r}), os.path.exists('/etc'))\n"
        "print(os.getcwd())\nprint([l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0])\n"
    )
    out = _run_bare(kernel, tmp_path, code).stdout.splitlines()
    assert set(eval(out[0])) <= {"sandbox", "tmp", "proc", "dev", "usr", "lib", "lib64", "lib32", "root", "bin", "opt", "home"}
    assert path.name not in out[1] and secret not in "".join(out)
    assert out[2:] == ["False False False", isolation.WORK_INSIDE, "0000000000000000"]  # and no capability


def test_writes_outside_the_private_dirs_fail(kernel, tmp_path):  # noqa: F811
    target = tmp_path / "escape.txt"
    code = (
        "import os\nfails = 0\n"
        f"for p in ['/usr/lib/escape', '/sandbox/escape', '/escape', {str(target)!r}]:\n"
        "    try:\n        open(p, 'w').write('x')\n    except OSError:\n        fails += 1\n"
        "open('/tmp/ok', 'w').write('x'); open('ok', 'w').write('x')\nprint(fails)\n"
    )
    proc = _run_bare(kernel, tmp_path, code)
    assert proc.stdout.strip() == "4", proc.stderr
    assert not target.exists()


def test_host_loopback_is_unreachable(kernel, tmp_path, listener):  # noqa: F811
    port, accepted = listener
    code = f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'leak')\n    print('connected')\nexcept OSError as e:\n    print('refused', e)\n"
    proc = _run_bare(kernel, tmp_path, code)
    assert proc.stdout.startswith("refused"), proc.stdout + proc.stderr
    assert accepted == []


def test_host_processes_cannot_be_signalled(kernel, tmp_path, victim):  # noqa: F811
    code = (
        f"import os, signal\ntry:\n    os.kill({victim.pid}, signal.SIGKILL)\n    print('sent')\nexcept ProcessLookupError:\n    print('no such process')\n"
        "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
    )
    out = _run_bare(kernel, tmp_path, code).stdout.splitlines()
    assert out[0] == "no such process"
    assert max(eval(out[1])) < 100  # only the namespace's own few processes
    assert victim.poll() is None


def test_forks_die_with_the_program(kernel, tmp_path):  # noqa: F811
    marker = uuid.uuid4().hex
    code = f"import os, sys\nif os.fork() == 0:\n    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(30)', {marker!r}])\nimport time\ntime.sleep(0.3)\n"
    _run_bare(kernel, tmp_path, code)
    time.sleep(0.2)
    assert not _processes_with(marker)


def _interpreters_with(marker: str) -> list[int]:
    """The sandboxed program itself: ``python -I -S -c CODE`` with ``marker`` in ``CODE``.

    Not ``bwrap`` or ``unshare``, whose own argv holds the marker from the moment they start, nor
    the evaluator (and its fork before the exec), whose argv holds all of theirs: killing the
    evaluator then can beat the ``PR_SET_PDEATHSIG`` the layers set a little later, and a loaded
    CI machine did exactly that. Once the interpreter runs, every layer above it has armed it.
    """
    found = []
    for pid in _processes_with(marker):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args[1:4] == [b"-I", b"-S", b"-c"] and marker.encode() in args[4]:
            found.append(pid)
    return found


def test_everything_dies_with_the_evaluator(kernel, tmp_path):  # noqa: F811
    marker = uuid.uuid4().hex
    program, mnt = tmp_path / "program.py", tmp_path / "mnt"
    program.write_text("")
    mnt.mkdir()
    code = f"import time\ntime.sleep(30)  # {marker}"
    inner = isolation.wrap(Isolation(kernel), Launch(str(program), str(program), str(mnt), 1 << 20), [isolation.interpreter(), "-I", "-S", "-c", code])
    evaluator = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])", *inner], env={"PATH": os.defpath})
    deadline = time.monotonic() + 20
    while not _interpreters_with(f"# {marker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _interpreters_with(f"# {marker}"), "the sandboxed program never started"
    evaluator.send_signal(signal.SIGKILL)
    evaluator.wait()
    deadline = time.monotonic() + 10
    while _processes_with(f"# {marker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _processes_with(f"# {marker}")


# -- choosing the mechanism ----------------------------------------------------------------------


def test_setting_is_checked(monkeypatch):
    monkeypatch.setenv(settings.SANDBOX.name, "bwarp")
    with pytest.raises(ValueError, match="MEDMOE_SANDBOX='bwarp' is not one of auto, bwrap, unshare, off"):
        isolation.current()
    monkeypatch.setenv(settings.SANDBOX.name, "off")
    assert isolation.current() == Isolation("none") and isolation.current().sandbox == "rlimits+audit"


def test_auto_falls_back_to_unshare_then_inner_layer_injected(monkeypatch, caplog):
    """Which mechanisms work is injected; the order of preference is what is tested."""
    monkeypatch.setenv(settings.SANDBOX.name, "auto")
    monkeypatch.setattr(isolation, "works", lambda m: m == "unshare")
    assert isolation.current() == Isolation("unshare") and isolation.current().sandbox == "namespaces"
    monkeypatch.setattr(isolation, "works", lambda m: False)
    isolation._warn_inner_only.cache_clear()
    assert isolation.current() == Isolation("none")
    assert "no kernel isolation for generated code" in caplog.text


def test_asking_for_a_mechanism_that_cannot_run_is_an_error_injected(monkeypatch):
    monkeypatch.setenv(settings.SANDBOX.name, "bwrap")
    monkeypatch.setattr(isolation, "works", lambda m: False)
    with pytest.raises(RuntimeError, match="MEDMOE_SANDBOX=bwrap but bwrap cannot start a sandbox here"):
        isolation.current()


def test_program_holds_no_root(kernel, tmp_path):  # noqa: F811
    """An unprivileged uid (mapped to an unprivileged host uid: the host's view of the process is
    read from outside), no capability, no_new_privs, and /proc (its /proc/sys too) read-only."""
    marker = uuid.uuid4().hex
    code = (
        "import os, time\nstatus = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
        "print(os.getuid(), os.getgid(), status['CapEff'].strip(), status['CapBnd'].strip(), status['NoNewPrivs'].strip())\n"
        "print(' '.join(l.split()[3] for l in open('/proc/self/mounts') if l.split()[1] in ('/proc', '/proc/sys')))\n"
        f"import sys\nsys.stdout.flush()\ntime.sleep(3)  # {marker}\n"
    )
    program, mnt = tmp_path / "program.py", tmp_path / "mnt"
    program.write_text("")
    mnt.mkdir()
    argv = isolation.wrap(Isolation(kernel), Launch(str(program), str(program), str(mnt), 1 << 20), [isolation.interpreter(), "-I", "-S", "-c", code])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={"PATH": os.defpath})
    deadline = time.monotonic() + 10
    while not (pids := [p for p in _processes_with(f"# {marker}") if _argv0(p) == isolation.interpreter()]) and time.monotonic() < deadline:
        time.sleep(0.05)  # the program itself: the launchers above it carry the marker too
    host_view = [dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()) for pid in pids]
    out, err = proc.communicate(timeout=20)
    lines = out.splitlines()
    assert len(lines) == 2, (out, err)
    uid, gid, cap_eff, cap_bnd, nnp = lines[0].split()
    assert uid != "0" and gid != "0"
    assert (cap_eff, cap_bnd, nnp) == ("0000000000000000", "0000000000000000", "1")
    assert lines[1].split() and all(opts.split(",")[0] == "ro" for opts in lines[1].split())
    assert host_view, "the program was not seen from the host"
    for status in host_view:  # real, effective, saved and filesystem uids (and gids) as the host sees them
        assert "0" not in status["Uid"].split() and "0" not in status["Gid"].split(), status["Uid"]


def _argv0(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return ""
