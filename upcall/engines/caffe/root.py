"""Real Caffe 1.0: where it lives and how to run its tools and pycaffe on host paths.

By default Caffe is Debian bullseye's CPU build in a root made by ``scripts/install-caffe.sh``
(``upcall caffe install``) at ``$UPCALL_CAFFE_ROOT`` (default /var/cache/upcall/caffe-bullseye);
its tools run through the root's ``upcall-run`` launcher (bubblewrap) with the host directories
they need bound read-write at the same path. ``UPCALL_CAFFE=/path/to/caffe`` (or ``--caffe-bin``)
points at a user's own build instead (a CUDA build, an NVIDIA container): its tools then run
directly, the other tools from the same directory; pycaffe (the programs in ``programs/``,
:func:`run_program`) runs with ``UPCALL_CAFFE_PYTHON`` when it is set, else with the bullseye
root's python3.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from upcall.errors import UpcallError
from upcall.fsutil import atomic_write_text

HELP = "install real Caffe 1.0 and run its tools on host paths"
DEFAULT_ROOT = Path("/var/cache/upcall/caffe-bullseye")
MARKER = "upcall-caffe.json"  # written last by the install script: the root is complete
LAUNCHER = "upcall-run"
# upcall/engines/caffe/root.py → the checkout root
INSTALL_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "install-caffe.sh"
# Programs that run under the root's python3 (see upcall/engines/caffe/programs/__init__.py)
PROGRAMS = Path(__file__).resolve().parent / "programs"
INSTALL_HINT = "install it with `upcall caffe install` (as root) or set UPCALL_CAFFE=/path/to/caffe"
# glog prefixes an ERROR or FATAL line with E or F and the date: "F1124 09:01:02.123 ...".
_GLOG_ERROR = re.compile(r"^[EF]\d{4} ")


def caffe_root() -> Path:
    """The bullseye Caffe root: ``$UPCALL_CAFFE_ROOT`` or /var/cache/upcall/caffe-bullseye."""
    return Path(os.environ.get("UPCALL_CAFFE_ROOT") or DEFAULT_ROOT)


def own_caffe(caffe_bin: str | os.PathLike | None = None) -> Path | None:
    """The user's own caffe binary: ``caffe_bin`` (``--caffe-bin``), else ``UPCALL_CAFFE``;
    None when neither is given. Passed down explicitly rather than written into os.environ."""
    name = "--caffe-bin" if caffe_bin is not None else "UPCALL_CAFFE"
    value = os.fspath(caffe_bin) if caffe_bin is not None else os.environ.get("UPCALL_CAFFE")
    if not value:
        return None
    path = Path(value).absolute()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise UpcallError(f"{name}={value}: not an executable file")
    return path


def caffe_available(*, caffe_bin: str | os.PathLike | None = None) -> bool:
    """True when Caffe can run: a caffe binary is given, or the root is installed and runs."""
    try:
        if own_caffe(caffe_bin) is not None:
            return True
    except UpcallError:
        return False
    return _root_problem(caffe_root()) is None


@functools.lru_cache(maxsize=4)
def _root_problem(root: Path) -> str | None:
    """Why the root's tools cannot run (None when they can); probed once per process."""
    if not (root / MARKER).is_file():
        return f"no Caffe root at {root}"
    if shutil.which("bwrap") is None:
        return "bwrap is missing (apt-get install bubblewrap)"
    # bubblewrap needs namespaces, which some containers withhold (Docker: --privileged).
    probe = subprocess.run(
        [str(root / LAUNCHER), "--chdir", "/", "--", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no message"])[-1]
        return f"bubblewrap cannot run here: {last}"
    return None


def require_caffe(*, caffe_bin: str | os.PathLike | None = None) -> None:
    """Raise UpcallError saying how to install Caffe when it cannot run."""
    own_caffe(caffe_bin)  # a wrong UPCALL_CAFFE / --caffe-bin gets its own message
    if not caffe_available(caffe_bin=caffe_bin):
        why = _root_problem(caffe_root())
        raise UpcallError(f"real Caffe is not available ({why}); {INSTALL_HINT}")


def tool_command(
    tool: str,
    *args: str,
    binds: Sequence[Path] = (),
    cwd: Path | None = None,
    caffe_bin: str | os.PathLike | None = None,
) -> list[str]:
    """The command line that runs a Caffe tool (``caffe``, ``convert_imageset``, ``python3`` ...).

    With the bullseye root, ``cwd`` and every path in ``binds`` are bound read-write at the same
    path inside, and the tool starts in ``cwd`` (default: the caller's directory). With
    ``UPCALL_CAFFE`` the tools run directly, so run the command with ``cwd`` as its directory
    (:func:`run_tool` does); ``python3`` is then ``UPCALL_CAFFE_PYTHON``, else the root's.
    ``caffe_bin``: the user's caffe binary, instead of ``UPCALL_CAFFE``.
    """
    python = os.environ.get("UPCALL_CAFFE_PYTHON")
    if tool == "python3" and python:
        if shutil.which(python) is None:
            raise UpcallError(f"UPCALL_CAFFE_PYTHON={python}: not an executable file")
        return [python, *args]
    own = own_caffe(caffe_bin)
    if own is not None and tool != "python3":
        exe = own if tool == "caffe" else own.parent / tool
        if not os.access(exe, os.X_OK):
            raise UpcallError(f"{exe}: no {tool} beside UPCALL_CAFFE={own}")
        return [str(exe), *args]
    if own is not None and (problem := _root_problem(caffe_root())):
        raise UpcallError(
            f"pycaffe is not available ({problem}); set UPCALL_CAFFE_PYTHON to "
            "the python of your Caffe's pycaffe, or run `upcall caffe install`"
        )
    require_caffe()
    command = [str(caffe_root() / LAUNCHER)]
    for path in dict.fromkeys(os.path.abspath(p) for p in binds):  # ordered, without repeats
        command += ["--bind", path]
    if cwd is not None:
        command += ["--chdir", os.path.abspath(cwd)]
    return [*command, "--", tool, *args]


def tool_error(tool: str, returncode: int, stderr: str) -> UpcallError:
    """The one-line error for a failed tool: its last glog ERROR/FATAL line, else its last lines."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    errors = [line for line in lines if _GLOG_ERROR.match(line)]
    tail = errors[-1:] or lines[-3:]
    detail = " | ".join(tail) if tail else "no error output"
    return UpcallError(f"{tool} failed (exit status {returncode}): {detail}")


def run_tool(
    tool: str,
    *args: str,
    binds: Sequence[Path] = (),
    cwd: Path | None = None,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    input: str | None = None,
    caffe_bin: str | os.PathLike | None = None,
) -> subprocess.CompletedProcess:
    """Run a Caffe tool (see :func:`tool_command`); with ``check``, failure raises UpcallError.

    ``capture`` keeps stdout and stderr as text on the result; ``env`` adds variables;
    ``input`` is written to the tool's stdin.
    """
    command = tool_command(tool, *args, binds=binds, cwd=cwd, caffe_bin=caffe_bin)
    try:
        result = subprocess.run(
            command,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            input=input,
            capture_output=capture,
            text=True,
            timeout=timeout,
            check=False,
            # Its own session: the terminal's Ctrl-C goes to upcall alone, which then stops its
            # work in order (a half-run pycaffe step would otherwise fail as an error).
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as e:
        raise UpcallError(f"{tool} did not finish within {timeout:g} s") from e
    if check and result.returncode != 0:
        raise tool_error(tool, result.returncode, result.stderr if capture else "")
    return result


def run_pycaffe(
    script: str,
    *,
    binds: Sequence[Path] = (),
    cwd: Path | None = None,
    timeout: float | None = None,
    caffe_bin: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
) -> object:
    """Run a Python 3 script with pycaffe importable; return the JSON it prints on its last line.

    The script comes on stdin; ``binds`` are the host directories it reads or writes; ``env``
    adds variables (:func:`python_env`).
    """
    result = _run_python(
        ["-"], binds=binds, cwd=cwd, timeout=timeout, caffe_bin=caffe_bin, env=env, input=script
    )
    return _last_json("pycaffe script", result.stdout)


def run_program(
    name: str,
    params: dict,
    *,
    binds: Sequence[Path] = (),
    cwd: Path | None = None,
    timeout: float | None = None,
    caffe_bin: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
) -> object:
    """Run the pycaffe program ``programs/<name>.py`` as ``python3 PROGRAM PARAMS_FILE`` (the
    JSON of ``params``); return the JSON it prints on its last line.

    The program and its parameters go to a temporary directory bound into the root (the package
    itself may sit where the launcher cannot bind it, and a long parameter list could pass the
    kernel's limit on one argument); the other arguments are :func:`run_pycaffe`'s.
    """
    program = PROGRAMS / f"{name}.py"
    # In the root, /var, /usr, /opt ... are the root's own, read-only: a TMPDIR under them
    # cannot be bound; under /tmp (a tmpfs inside) any directory can.
    where = None if os.environ.get("UPCALL_CAFFE_PYTHON") else "/tmp"
    with tempfile.TemporaryDirectory(prefix="upcall-program-", dir=where) as tmp:
        copy, params_file = Path(tmp) / program.name, Path(tmp) / "params.json"
        shutil.copyfile(program, copy)
        params_file.write_text(json.dumps(params), encoding="utf-8")
        result = _run_python(
            [str(copy), str(params_file)],
            binds=[*binds, Path(tmp)],
            cwd=cwd,
            timeout=timeout,
            caffe_bin=caffe_bin,
            env=env,
        )
    return _last_json(f"pycaffe program {program.name}", result.stdout)


def _run_python(
    args: Sequence[str],
    *,
    binds: Sequence[Path],
    cwd: Path | None,
    timeout: float | None,
    caffe_bin: str | os.PathLike | None,
    env: dict[str, str] | None,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    """The root's python3 with ``args`` (:func:`run_pycaffe`'s and :func:`run_program`'s)."""
    return run_tool(
        "python3",
        *args,
        binds=binds,
        cwd=cwd,
        timeout=timeout,
        input=input,
        caffe_bin=caffe_bin,
        # pycaffe logs every layer of a net it loads otherwise
        env={**(env or {}), "GLOG_minloglevel": "2"},
    )


def _last_json(what: str, stdout: str) -> object:
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError) as e:
        last = lines[-1][:200] if lines else "nothing"
        raise UpcallError(f"{what} printed no JSON on its last line (got {last!r})") from e


def python_env(folder: Path, *, caffe_bin: str | os.PathLike | None = None) -> dict[str, str]:
    """Variables that let Caffe's embedded Python (a ``type: "Python"`` layer) and pycaffe
    import modules from ``folder`` (a job folder, bound into the root by its tools' callers).

    A Caffe run directly (``UPCALL_CAFFE``, ``UPCALL_CAFFE_PYTHON``) takes PYTHONPATH. The
    root's launcher clears PYTHONPATH, so that host packages cannot leak in, but keeps
    PYTHONUSERBASE: its Python adds ``<base>/lib/pythonX.Y/site-packages`` and reads the .pth
    file written there, which names ``folder``.
    """
    folder = Path(folder).absolute()
    paths = [str(folder), os.environ.get("PYTHONPATH")]
    env = {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    direct = own_caffe(caffe_bin) is not None and bool(os.environ.get("UPCALL_CAFFE_PYTHON"))
    if direct or _root_problem(caffe_root()) is not None:
        return env  # nothing runs in the root
    # (a user's caffe run with the root's pycaffe sees PYTHONUSERBASE too: its user site moves)
    found = [p.parent.name for p in (caffe_root() / "usr" / "lib").glob("python3.*/os.py")]
    if len(found) != 1:
        raise UpcallError(f"{caffe_root()}: expected one python3 in the Caffe root, found {found}")
    base = folder / ".upcall-python"
    site = base / "lib" / found[0] / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    atomic_write_text(site / "upcall-job.pth", f"{folder}\n")
    return {**env, "PYTHONUSERBASE": str(base)}


# --- the `upcall caffe` command -------------------------------------------------------------


def install(prefix: Path | None = None, *, with_host_packages: bool = False) -> Path:
    """Run ``scripts/install-caffe.sh`` (the one implementation); return the Caffe root."""
    if not INSTALL_SCRIPT.is_file():
        raise UpcallError(
            f"{INSTALL_SCRIPT}: install script not found (run from a source checkout)"
        )
    root = Path(prefix).absolute() if prefix is not None else caffe_root()
    command = ["bash", str(INSTALL_SCRIPT), str(root)]
    if with_host_packages:
        command.insert(2, "--with-host-packages")
    if subprocess.run(command, check=False).returncode != 0:
        raise UpcallError(f"installing Caffe into {root} failed (see the message above)")
    return root


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="caffe_command", metavar="ACTION", required=True)
    p = sub.add_parser("install", help="build the Debian bullseye Caffe root (as root; ~1 GB)")
    p.add_argument(
        "--prefix", type=Path, help=f"where (default $UPCALL_CAFFE_ROOT or {DEFAULT_ROOT})"
    )
    p.add_argument(
        "--with-host-packages",
        action="store_true",
        help="apt-get install debootstrap and bubblewrap when missing",
    )
    sub.add_parser("path", help="print the Caffe root (or UPCALL_CAFFE) and whether it works")
    p = sub.add_parser(
        "run", help="run a Caffe tool on host paths: upcall caffe run caffe train ..."
    )
    p.add_argument(
        "--bind",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="also make DIR visible (read-write); the current directory always is",
    )
    p.add_argument(
        "--caffe-bin", type=Path, help="use this caffe binary instead (as UPCALL_CAFFE does)"
    )
    p.add_argument("tool", help="caffe, convert_imageset, compute_image_mean, python3, ...")
    p.add_argument("args", nargs="...", help="the tool's arguments")


def run(args: argparse.Namespace) -> int:
    if args.caffe_command == "install":
        install(args.prefix, with_host_packages=args.with_host_packages)
        return 0
    if args.caffe_command == "path":
        own = own_caffe()
        print(own if own is not None else caffe_root())
        require_caffe()
        return 0
    result = run_tool(
        args.tool, *args.args, binds=args.bind, check=False, capture=False, caffe_bin=args.caffe_bin
    )
    sys.stdout.flush()
    return result.returncode


def pycaffe_gpu(gpu: int | None) -> int | None:
    """The device pycaffe runs on: ``gpu`` only with the user's own pycaffe.

    Without UPCALL_CAFFE_PYTHON pycaffe runs in the bundled bullseye root, whose pycaffe is
    Debian's CPU-only build (set_mode_gpu fails there) even when UPCALL_CAFFE trains on a GPU.
    """
    return gpu if os.environ.get("UPCALL_CAFFE_PYTHON") else None
