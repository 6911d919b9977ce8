"""Installing real Caffe, the launcher that runs it on host paths, and the UPCALL_CAFFE override."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from upcall.engines.caffe import root as caffe_api
from upcall.errors import UpcallError

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "install-caffe.sh"
IS_ROOT = os.geteuid() == 0
HAVE_HOST_TOOLS = bool(shutil.which("debootstrap") and shutil.which("bwrap"))
needs_root = pytest.mark.skipif(
    not IS_ROOT, reason="the install script's checks past 'not root' need root"
)


def install(*args: str, env: dict[str, str] | None = None, as_user: bool = False):
    command = ["bash", str(SCRIPT), *args]
    script = None
    if as_user and IS_ROOT:
        # As nobody, who may not be able to open the checkout: the script comes on stdin.
        command = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "bash",
            "-s",
            *args,
        ]
        script = SCRIPT.read_text()
    return subprocess.run(
        command,
        input=script,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=60,
        cwd="/",
    )


@pytest.fixture
def bullseye(caffe, monkeypatch):
    """upcall.engines.caffe.root with the bullseye root (not a user's own Caffe from UPCALL_CAFFE)."""
    monkeypatch.delenv("UPCALL_CAFFE", raising=False)
    monkeypatch.delenv("UPCALL_CAFFE_PYTHON", raising=False)
    if not caffe.caffe_available():
        pytest.skip("UPCALL_CAFFE is set and there is no bullseye Caffe root to check")
    return caffe


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    caffe_api.configure(parser)
    return caffe_api.run(parser.parse_args(list(argv)))


# --- scripts/install-caffe.sh: clear one-line errors, never a half-made root ------------------


def test_install_refuses_a_non_root_user(tmp_path):
    result = install(str(tmp_path / "root"), as_user=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"install-caffe: error: must be run as root (debootstrap needs it), e.g. sudo bash "
        f"{'install-caffe.sh' if IS_ROOT else SCRIPT} {tmp_path / 'root'}"
    ]
    assert not (tmp_path / "root").exists()


def test_install_rejects_an_unknown_option():
    result = install("--frobnicate")
    assert result.returncode == 1
    assert "unknown option --frobnicate" in result.stderr


@needs_root
def test_install_names_missing_host_tools(tmp_path):
    # A PATH holding every host command except debootstrap and bwrap.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        for exe in Path(d).iterdir() if Path(d).is_dir() else ():
            if exe.name not in ("debootstrap", "bwrap") and not (bin_dir / exe.name).exists():
                (bin_dir / exe.name).symlink_to(exe)
    result = install(str(tmp_path / "root"), env={"PATH": str(bin_dir)})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "install-caffe: error: debootstrap bubblewrap not found; install them from Debian's "
        "packages: apt-get install debootstrap bubblewrap"
    )


@needs_root
@pytest.mark.skipif(not HAVE_HOST_TOOLS, reason="needs debootstrap and bwrap on PATH")
def test_install_reports_an_unreachable_mirror(tmp_path):
    mirror = "http://127.0.0.1:9/debian"  # the discard port: the connection is refused at once
    result = install(str(tmp_path / "root"), env={"UPCALL_DEBIAN_MIRROR": mirror})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"install-caffe: error: cannot reach the Debian mirror {mirror} (no {mirror}/dists/bullseye/"
        "Release); check the network or set UPCALL_DEBIAN_MIRROR"
    )
    assert not (tmp_path / "root").exists() and not (tmp_path / "root.partial").exists()


@needs_root
@pytest.mark.skipif(not HAVE_HOST_TOOLS, reason="needs debootstrap and bwrap on PATH")
def test_install_never_adopts_or_deletes_a_foreign_directory(tmp_path):
    prefix = tmp_path / "mine"
    prefix.mkdir()
    (prefix / "precious.txt").write_text("keep me")
    result = install(str(prefix))
    assert result.returncode == 1
    assert (
        "is not a Caffe root (no usr/bin/caffe); remove it or choose another PREFIX"
        in result.stderr
    )
    assert (prefix / "precious.txt").read_text() == "keep me"
    assert not (prefix / caffe_api.MARKER).exists()


def test_install_with_the_marker_takes_the_fast_path(bullseye):
    root = bullseye.caffe_root()
    marker = json.loads((root / bullseye.MARKER).read_text())
    assert marker["caffe_version"] == "1.0.0"
    result = install(str(root))
    assert result.returncode == 0
    assert result.stderr.startswith(f"install-caffe: Caffe root ready: {root}")
    # not rebuilt, not re-verified: the marker is the one written at install time
    assert json.loads((root / bullseye.MARKER).read_text()) == marker


# --- the launcher: host paths, binds, cwd, failures -------------------------------------------


def test_tool_runs_in_cwd_with_only_the_bound_directories(bullseye, tmp_path):
    work, out, hidden = tmp_path / "work", tmp_path / "out", tmp_path / "hidden"
    for d in (work, out, hidden):
        d.mkdir()
    (work / "in.txt").write_text("from the host")
    script = (
        "import json, os\n"
        f"open({str(out / 'copy.txt')!r}, 'w').write(open('in.txt').read())\n"
        f"print(json.dumps({{'cwd': os.getcwd(), 'hidden': os.path.exists({str(hidden)!r})}}))\n"
    )
    assert bullseye.run_pycaffe(script, binds=[out], cwd=work) == {
        "cwd": str(work),
        "hidden": False,
    }
    assert (out / "copy.txt").read_text() == "from the host"


def test_pycaffe_is_caffe_1_0_with_python_3(bullseye):
    script = "import caffe, json, sys; print(json.dumps([caffe.__version__, sys.version_info[0]]))"
    assert bullseye.run_pycaffe(script) == ["1.0.0", 3]


def test_caffe_version_through_the_cli(bullseye, capfd):
    assert cli("run", "caffe", "--version") == 0
    assert capfd.readouterr().out.strip() == "caffe version 1.0.0"


def test_a_failing_tool_raises_with_caffes_own_message(bullseye, tmp_path):
    with pytest.raises(
        UpcallError,
        match=r"^caffe failed \(exit status \d+\): F\d{4} .*"
        r"File not found: missing\.prototxt$",
    ):
        bullseye.run_tool("caffe", "train", "--solver=missing.prototxt", cwd=tmp_path)


def test_a_script_without_json_output_is_an_error(bullseye):
    with pytest.raises(UpcallError, match="printed no JSON on its last line"):
        bullseye.run_pycaffe("print('hello')")


def test_binding_a_missing_directory_fails_clearly(bullseye, tmp_path):
    with pytest.raises(
        UpcallError, match=re.escape(f"cannot bind {tmp_path / 'nope'}: no such file")
    ):
        bullseye.run_tool("caffe", "--version", binds=[tmp_path / "nope"])


def test_a_machine_where_bwrap_cannot_run_is_reported(bullseye, tmp_path, monkeypatch):
    (tmp_path / "bwrap").write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create a new namespace' >&2\nexit 1\n"
    )
    (tmp_path / "bwrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    bullseye._root_problem.cache_clear()  # the probe's answer is cached per process
    try:
        assert not bullseye.caffe_available()
        with pytest.raises(
            UpcallError,
            match=r"\(bubblewrap cannot run here: bwrap: No permissions to "
            r"create a new namespace\); install it with",
        ):
            bullseye.require_caffe()
    finally:
        bullseye._root_problem.cache_clear()


# --- without Caffe; with the user's own Caffe (UPCALL_CAFFE) ----------------------------------


def test_absent_caffe_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("UPCALL_CAFFE", raising=False)
    monkeypatch.setenv("UPCALL_CAFFE_ROOT", str(tmp_path / "none"))
    assert caffe_api.caffe_root() == tmp_path / "none"
    assert not caffe_api.caffe_available()
    with pytest.raises(
        UpcallError, match=r"no Caffe root at .*none\); install it with `upcall caffe install`"
    ):
        caffe_api.tool_command("caffe", "--version")


@pytest.fixture
def own_caffe(tmp_path, monkeypatch) -> Path:
    """A user's own Caffe build directory: caffe and convert_imageset that report how they ran."""
    tools = tmp_path / "build" / "tools"
    tools.mkdir(parents=True)
    for name in ("caffe", "convert_imageset"):
        (tools / name).write_text(f'#!/bin/sh\necho "{name} $* in $PWD"\n')
        (tools / name).chmod(0o755)
    monkeypatch.setenv("UPCALL_CAFFE", str(tools / "caffe"))
    monkeypatch.setenv("UPCALL_CAFFE_ROOT", str(tmp_path / "no-root"))  # never used
    monkeypatch.delenv("UPCALL_CAFFE_PYTHON", raising=False)
    return tools


def test_own_caffe_runs_directly_in_cwd(own_caffe, tmp_path):
    assert caffe_api.caffe_available()
    assert caffe_api.tool_command("caffe", "train", binds=[tmp_path]) == [
        str(own_caffe / "caffe"),
        "train",
    ]
    result = caffe_api.run_tool("caffe", "train", "--solver=s.prototxt", cwd=tmp_path)
    assert result.stdout == f"caffe train --solver=s.prototxt in {tmp_path}\n"
    result = caffe_api.run_tool("convert_imageset", "list.txt", cwd=tmp_path)
    assert result.stdout == f"convert_imageset list.txt in {tmp_path}\n"


def test_own_caffe_missing_tool_or_python_is_named(own_caffe, monkeypatch):
    with pytest.raises(
        UpcallError,
        match=re.escape(f"{own_caffe / 'compute_image_mean'}: no compute_image_mean beside"),
    ):
        caffe_api.tool_command("compute_image_mean")
    # pycaffe would come from the bullseye root, which this test's UPCALL_CAFFE_ROOT lacks
    with pytest.raises(
        UpcallError,
        match=r"^pycaffe is not available \(no Caffe root at .*\); "
        r"set UPCALL_CAFFE_PYTHON",
    ):
        caffe_api.run_pycaffe("print(1)")
    monkeypatch.setenv("UPCALL_CAFFE_PYTHON", "/no/python")
    with pytest.raises(
        UpcallError, match=r"^UPCALL_CAFFE_PYTHON=/no/python: not an executable file$"
    ):
        caffe_api.run_pycaffe("print(1)")


def test_own_caffe_python_runs_pycaffe_scripts(own_caffe, monkeypatch, tmp_path):
    monkeypatch.setenv("UPCALL_CAFFE_PYTHON", sys.executable)
    script = "import json, os\nprint('noise')\nprint(json.dumps({'glog': os.environ['GLOG_minloglevel']}))"
    assert caffe_api.run_pycaffe(script, cwd=tmp_path) == {"glog": "2"}


def test_own_caffe_must_be_executable(tmp_path, monkeypatch):
    (tmp_path / "caffe").write_text("not a program")
    monkeypatch.setenv("UPCALL_CAFFE", str(tmp_path / "caffe"))
    assert not caffe_api.caffe_available()
    with pytest.raises(
        UpcallError,
        match=f"^{re.escape(f'UPCALL_CAFFE={tmp_path}/caffe')}: not an executable file$",
    ):
        caffe_api.require_caffe()


def test_cli_caffe_bin_option_and_path(own_caffe, tmp_path, monkeypatch, capfd):
    other = tmp_path / "other-caffe"
    shutil.copy(own_caffe / "caffe", other)
    monkeypatch.chdir(tmp_path)
    assert cli("run", "--caffe-bin", str(other), "caffe", "test", "--iterations=2") == 0
    assert capfd.readouterr().out == f"caffe test --iterations=2 in {tmp_path}\n"
    # --caffe-bin is passed down, not written into this process's environment
    assert os.environ["UPCALL_CAFFE"] == str(own_caffe / "caffe")
    assert cli("path") == 0
    assert capfd.readouterr().out == f"{own_caffe / 'caffe'}\n"


def test_install_command_finds_the_projects_install_script():
    from upcall.engines.caffe import root

    assert root.INSTALL_SCRIPT.is_file() and root.INSTALL_SCRIPT.name == "install-caffe.sh"
