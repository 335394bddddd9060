"""The sandbox's kernel layer: each program in its own namespaces, seeing almost nothing.

Two mechanisms, tried in this order: ``bwrap`` (bubblewrap, Debian's ``bubblewrap`` package) and
``unshare`` from util-linux. Either gives the program new mount, PID, network, IPC and UTS
namespaces (and a user namespace, so it works without root), and a root filesystem built from
nothing but, read-only, the Python interpreter, its standard library (without site-packages) and
the system library directories; plus a private, size-capped ``/tmp`` and working directory
(tmpfs), a minimal ``/dev`` and a ``/proc`` of its own PID namespace. Home directories, the
project, caches and other users' files are not in its view, so they cannot be read or written.
A new network namespace has no interface but its own loopback, so nothing on the host (not even a
listener on the host's 127.0.0.1) is reachable. The program is never PID 1 (a reaper is), and
when PID 1 ends the kernel kills every process left in the namespace; the whole namespace also
dies with the evaluator (``--die-with-parent`` / ``setpriv --pdeathsig``).

The program never holds root, inside or outside its namespaces: no capability (bubblewrap's
``--cap-drop ALL``, ``setpriv`` emptying the bounding set), ``no_new_privs`` set, a ``/proc``
mounted read-only (``/proc/sys`` included), and an unprivileged uid. Where the evaluator runs as
an ordinary user, that is uid :data:`SANDBOX_ID` of a user namespace mapped to the evaluator's
uid. Where it runs as root (CI, containers), a user namespace would map to host root, which the
kernel treats as the owner of host-wide settings such as ``/proc/sys/kernel/core_pattern``
whatever the capabilities; so the namespaces are built as root and the program drops to the
host's ``nobody`` (:func:`host_ids`) before it starts.

``MEDMOE_SANDBOX`` chooses: ``auto`` (default: the first mechanism that works here), ``bwrap``,
``unshare`` or ``off`` (resource limits and audit hooks only, for machines without namespaces and
for testing that layer alone). The mechanism used is recorded per program (``sandbox`` is
``"namespaces"`` or ``"rlimits+audit"``) so results say how their code was contained.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from medmoe_lm_eval import settings

CHOICES = ("auto", "bwrap", "unshare", "off")
KERNEL, INNER_ONLY = "namespaces", "rlimits+audit"

#: where things are inside the namespace
ROOT_INSIDE = "/sandbox"
WORK_INSIDE = f"{ROOT_INSIDE}/work"
BOOTSTRAP_INSIDE = f"{ROOT_INSIDE}/bootstrap.py"
PROGRAM_INSIDE = f"{ROOT_INSIDE}/program.py"
_DEVICES = ("null", "zero", "full", "random", "urandom")
#: the program's uid and gid inside a user namespace of its own (any id but 0)
SANDBOX_ID = 1000
#: the host account the program runs as when the evaluator is root
NOBODY = "nobody"
_SYSTEM_LIBS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32")

#: run by ``unshare`` as PID 1 of the new namespaces: build the root, then run the program as a
#: child (never PID 1), chrooted, with no capabilities, as an unprivileged uid (``$ENTER``: a
#: nested user namespace's options for ``unshare``; ``$DROP``: ``setpriv``'s to change uid; each
#: empty or words without blanks). Arguments: root mountpoint, scratch size, ENTER, DROP,
#: the directories to create in it, ``--``, then ``ro SRC DST`` / ``ln TARGET DST`` /
#: ``tmp MODE DST`` / ``dev SRC DST`` triples, ``--``, argv. (One ``mkdir`` for all directories:
#: each process started here is start-up time of every program; a path with blanks makes the probe
#: fail, and the sandbox then says it has no kernel layer.)
_UNSHARE_SCRIPT = r"""set -eu
R=$1; SIZE=$2; ENTER=$3; DROP=$4; shift 4
mount -t tmpfs -o mode=0755,size=16m medmoe "$R"
dirs=""
while [ "$1" != "--" ]; do dirs="$dirs $R$1"; shift; done
shift
mkdir -p $dirs
while [ "$1" != "--" ]; do
  kind=$1; src=$2; dst=$R$3; shift 3
  case $kind in
    ro)  [ -d "$src" ] || : > "$dst"; mount --bind -o ro "$src" "$dst" ;;
    ln)  ln -s "$src" "$dst" ;;
    tmp) mount -t tmpfs -o "mode=$src,size=$SIZE" medmoe "$dst" ;;
    dev) : > "$dst"; mount --bind "$src" "$dst" ;;
  esac
done
shift
mount -t proc -o ro,nosuid,nodev,noexec proc "$R/proc"
mount -o remount,ro "$R"
status=0
# shellcheck disable=SC2086  (ENTER and DROP are lists of words)
unshare $ENTER --root="$R" --wd=/sandbox/work /usr/bin/setpriv $DROP --bounding-set=-all --inh-caps=-all --no-new-privs -- "$@" || status=$?
exit $status
"""


@dataclass(frozen=True)
class Isolation:
    """How programs are started: ``mechanism`` is ``bwrap``, ``unshare`` or ``none``."""

    mechanism: str

    @property
    def sandbox(self) -> str:
        """What results record: ``namespaces`` under a kernel mechanism, else ``rlimits+audit``."""
        return INNER_ONLY if self.mechanism == "none" else KERNEL

    @property
    def isolated(self) -> bool:
        return self.mechanism != "none"


@dataclass(frozen=True)
class Launch:
    """One program's start: the host paths it reads and the sizes of its private filesystems."""

    program: str  # host path of the program file
    bootstrap: str  # host path of sandbox_child.py
    mountpoint: str  # an empty host directory (the ``unshare`` root is mounted over it)
    scratch_bytes: int  # size of the private /tmp and working directory, each


def interpreter() -> str:
    """The base interpreter (not a virtual environment's): the program needs the stdlib only."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def python_view() -> list[str]:
    """Host paths to show read-only: the interpreter, its stdlib and shared library, system libs."""
    paths = [interpreter(), *_stdlib()]
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if libdir and soname and Path(libdir, soname).exists():
        paths.append(os.path.realpath(Path(libdir, soname)))
    paths += [p for p in _SYSTEM_LIBS if os.path.isdir(p) and not os.path.islink(p)]
    unique = [p for p in dict.fromkeys(os.path.realpath(p) for p in paths if p) if os.path.exists(p)]
    return [p for p in unique if not any(p != q and p.startswith(q + os.sep) for q in unique)]


def _stdlib() -> list[str]:
    """The base installation's stdlib directories (a virtual environment's are site-packages)."""
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix, "installed_base": sys.base_prefix, "installed_platbase": sys.base_exec_prefix}
    return [sysconfig.get_path(name, vars=base) for name in ("stdlib", "platstdlib")]


def _masked() -> list[str]:
    """Parts of the stdlib view to hide: installed packages are not the program's business."""
    return [str(Path(p, "site-packages")) for p in dict.fromkeys(_stdlib()) if Path(p, "site-packages").is_dir()]


def _lib_links() -> list[tuple[str, str]]:
    """``/lib`` and friends where they are symlinks (merged /usr): (target, link)."""
    return [(os.readlink(p), p) for p in _SYSTEM_LIBS if os.path.islink(p)]


def bwrap_argv(launch: Launch, argv: list[str]) -> list[str]:
    """bubblewrap command line: every namespace, an empty root, the view, no capabilities."""
    ids = host_ids()
    if ids is None:  # uid SANDBOX_ID of a user namespace mapped to the evaluator's uid
        cmd = ["bwrap", "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_ID), "--gid", str(SANDBOX_ID), "--cap-drop", "ALL"]
        prefix = []
    else:  # no user namespace (it would map to host root): built as root, then setpriv drops to nobody
        unshare = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        cmd = ["bwrap", *unshare, "--cap-drop", "ALL", *(x for cap in _SETPRIV_CAPS for x in ("--cap-add", cap))]
        prefix = ["/usr/bin/setpriv", *_drop(ids), "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--"]
    cmd += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    view = [*python_view(), *(["/usr/bin/setpriv"] if prefix else [])]
    for folder in _parents(view):  # bubblewrap copies a parent's mode (/root: 0700); the program's uid must pass
        cmd += ["--perms", "0755", "--dir", folder]
    for path in view:
        cmd += ["--ro-bind", path, path]
    for path in _masked():
        cmd += ["--tmpfs", path]
    for target, link in _lib_links():
        cmd += ["--symlink", target, link]
    size = str(launch.scratch_bytes)
    cmd += ["--dev", "/dev", "--proc", "/proc", "--remount-ro", "/proc", "--perms", "1777", "--size", size, "--tmpfs", "/tmp"]
    cmd += ["--perms", "0777", "--size", size, "--tmpfs", WORK_INSIDE]  # as the unshare layer: the program's uid writes here
    cmd += ["--ro-bind", launch.program, PROGRAM_INSIDE, "--ro-bind", launch.bootstrap, BOOTSTRAP_INSIDE]
    cmd += ["--remount-ro", "/", "--chdir", WORK_INSIDE, "--", *prefix, *argv]
    return cmd


def _parents(paths: list[str]) -> list[str]:
    """The folders above ``paths`` (not ``/``), outermost first."""
    found = {str(parent) for path in paths for parent in Path(path).parents if str(parent) != "/"}
    return sorted(found - set(paths), key=lambda p: (p.count("/"), p))


def unshare_argv(launch: Launch, argv: list[str]) -> list[str]:
    """util-linux command line: namespaces by ``unshare``, the root built by a short sh script."""
    spec: list[str] = []
    for path in [*python_view(), "/usr/bin/setpriv"]:
        spec += ["ro", path, path]
    for path in _masked():
        spec += ["tmp", "0755", path]
    for target, link in _lib_links():
        spec += ["ln", target, link]
    spec += [item for dev in _DEVICES for item in ("dev", f"/dev/{dev}", f"/dev/{dev}")]
    spec += ["tmp", "1777", "/tmp", "tmp", "0777", WORK_INSIDE]
    spec += ["ro", launch.program, PROGRAM_INSIDE, "ro", launch.bootstrap, BOOTSTRAP_INSIDE]
    ids = host_ids()
    user = ["--user", "--map-root-user"] if ids is None else []  # as root: namespaces of host root, no mapping to it
    namespaces = [*user, "--mount", "--pid", "--fork", "--kill-child", "--net", "--ipc", "--uts"]
    head = ["setpriv", "--pdeathsig", "KILL", "unshare", *namespaces, "--propagation", "private"]
    enter = f"--user --map-user={SANDBOX_ID} --map-group={SANDBOX_ID}" if ids is None else ""
    drop = " ".join(_drop(ids)) if ids is not None else ""
    dirs = _directories(spec)
    script_args = [launch.mountpoint, str(launch.scratch_bytes), enter, drop, *dirs, "--", *spec, "--"]
    return [*head, "sh", "-c", _UNSHARE_SCRIPT, "sh", *script_args, *argv]


#: what ``setpriv`` needs, under bubblewrap as root, to drop to nobody and empty the bounding set
_SETPRIV_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")


def host_ids() -> tuple[int, int] | None:
    """(uid, gid) of the host's ``nobody``, which the program runs as when the evaluator is root;
    ``None`` for any other evaluator (its own uid is unprivileged already)."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(NOBODY)
    except KeyError:
        return 65534, 65534
    return entry.pw_uid, entry.pw_gid


def _drop(ids: tuple[int, int]) -> list[str]:
    """``setpriv`` options that change to ``ids``, with no supplementary groups."""
    return [f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups"]


def _directories(spec: list[str]) -> list[str]:
    """Directories the ``unshare`` script creates first: mount points, and parents of files."""
    dirs = ["/proc"]
    for kind, src, dst in zip(spec[::3], spec[1::3], spec[2::3], strict=True):
        is_dir = kind == "tmp" or (kind == "ro" and os.path.isdir(src))
        dirs.append(dst if is_dir else os.path.dirname(dst))
    return list(dict.fromkeys(dirs))


def wrap(isolation: Isolation, launch: Launch, argv: list[str]) -> list[str]:
    """The command that runs ``argv`` under ``isolation`` (``argv`` itself without one)."""
    if isolation.mechanism == "bwrap":
        return bwrap_argv(launch, argv)
    if isolation.mechanism == "unshare":
        return unshare_argv(launch, argv)
    return argv


def requested() -> str:
    """The ``MEDMOE_SANDBOX`` setting, checked (a typo must not silently drop the kernel layer)."""
    value = settings.SANDBOX.text().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"{settings.SANDBOX.name}={value!r} is not one of {', '.join(CHOICES)}; unset it to use the best available")
    return value


def current() -> Isolation:
    """The isolation programs get now: as requested, or the first mechanism that works here."""
    choice = requested()
    if choice == "off":
        return Isolation("none")
    if choice != "auto":
        if not works(choice):
            raise RuntimeError(f"{settings.SANDBOX.name}={choice} but {choice} cannot start a sandbox here: {probe_error(choice)}")
        return Isolation(choice)
    found = next((m for m in ("bwrap", "unshare") if works(m)), "none")
    if found == "none":
        _warn_inner_only()
    return Isolation(found)


@functools.cache
def _warn_inner_only() -> None:
    """Say once per process that programs run without the kernel layer, and why."""
    reasons = "; ".join(f"{m}: {probe_error(m)}" for m in ("bwrap", "unshare"))
    logging.getLogger(__name__).warning(
        "no kernel isolation for generated code (%s); programs run under resource limits and audit hooks only "
        "(results record sandbox_isolated = 0). Install bubblewrap to isolate them.",
        reasons,
    )


def works(mechanism: str) -> bool:
    return probe_error(mechanism) == ""


@functools.cache
def probe_error(mechanism: str) -> str:
    """Why ``mechanism`` cannot run a trivial program in the full view here ('' if it can)."""
    tool = "bwrap" if mechanism == "bwrap" else "unshare"
    if shutil.which(tool) is None or (mechanism == "unshare" and shutil.which("setpriv") is None):
        return f"{tool} is not installed"
    import tempfile

    with tempfile.TemporaryDirectory(prefix="medmoe-probe-") as root:
        program, mountpoint = Path(root, "p.py"), Path(root, "mnt")
        program.write_text("pass\n")
        mountpoint.mkdir()
        launch = Launch(str(program), str(program), str(mountpoint), 1 << 20)
        argv = [interpreter(), "-I", "-S", "-B", "-c", f"import os; assert os.getcwd() == {WORK_INSIDE!r}"]
        try:
            proc = subprocess.run(wrap(Isolation(mechanism), launch, argv), capture_output=True, timeout=30, env={"PATH": os.defpath})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
    return "" if proc.returncode == 0 else (proc.stderr.decode(errors="replace").strip().splitlines() or ["exit status " + str(proc.returncode)])[-1]
