"""The pycaffe programs (upcall/engines/caffe/programs/): standalone files that the Caffe root's
own Python runs, importing only what that root has."""

from __future__ import annotations

import ast
import importlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

import upcall
from upcall.engines.caffe.root import PROGRAMS

PROGRAM_FILES = sorted(p for p in PROGRAMS.glob("*.py") if p.name != "__init__.py")
# The bullseye root has Python 3.9's standard library, numpy (python3-numpy) and pycaffe.
AVAILABLE = {*sys.stdlib_module_names, "numpy", "caffe"}


def _imports(nodes) -> set[str]:
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." if node.level else node.module.split(".")[0])
    return names


def test_every_program_upcall_runs_is_a_file_there():
    called = set()  # root.run_program("name", ...) and the caffe engine's _pycaffe("name", ...)
    for path in PROGRAMS.parents[2].rglob("*.py"):  # upcall/
        text = path.read_text(encoding="utf-8")
        called |= set(re.findall(r"(?:run_program|_pycaffe)\(\s*\"(\w+)\"", text))
    assert called == {p.stem for p in PROGRAM_FILES} == {"forward", "init_weights", "score"}


@pytest.mark.parametrize("path", PROGRAM_FILES, ids=lambda p: p.stem)
def test_a_program_imports_only_what_the_caffe_root_has(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert _imports(ast.walk(tree)) <= AVAILABLE  # never upcall, never a relative import
    assert "caffe" not in _imports(tree.body)  # inside main(): the host can import the file
    module = importlib.import_module(f"upcall.engines.caffe.programs.{path.stem}")
    assert callable(module.main) and module.__file__ == str(path)
    assert PROGRAMS.is_relative_to(upcall.__path__[0])  # so `ruff check upcall` lints them


def test_each_program_compiles_and_imports_under_the_caffe_roots_python(caffe, tmp_path):
    for path in PROGRAM_FILES:
        shutil.copy(path, tmp_path)
    script = (
        "import importlib.util, json, sys\n"
        "mains = []\n"
        f"for path in {[str(tmp_path / p.name) for p in PROGRAM_FILES]!r}:\n"
        "    spec = importlib.util.spec_from_file_location('program', path)\n"
        "    module = importlib.util.module_from_spec(spec)\n"
        "    spec.loader.exec_module(module)\n"
        "    mains.append(callable(module.main))\n"
        "print(json.dumps([sys.version_info[0], mains]))\n"
    )
    assert caffe.run_pycaffe(script, binds=[tmp_path]) == [3, [True] * len(PROGRAM_FILES)]


def _net(folder: Path) -> dict:
    """init_weights's parameters for a small net whose Python layer's module is in ``folder``."""
    (folder / "passlayer.py").write_text(
        "import caffe\n"
        "class Pass(caffe.Layer):\n"
        "    def setup(self, bottom, top): pass\n"
        "    def reshape(self, bottom, top): top[0].reshape(*bottom[0].data.shape)\n"
        "    def forward(self, bottom, top): top[0].data[...] = bottom[0].data\n"
        "    def backward(self, top, propagate_down, bottom): pass\n"
    )
    (folder / "net.prototxt").write_text(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }\n'
        'layer { name: "pass" type: "Python" bottom: "data" top: "x"\n'
        '  python_param { module: "passlayer" layer: "Pass" } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"\n'
        '  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }\n'
    )
    return {"seed": 3, "net": str(folder / "net.prototxt"), "out": str(folder / "w.caffemodel")}


def test_a_program_imports_a_python_layer_from_its_working_directory(caffe, tmp_path):
    """As when the programs came on stdin (``python3 -``): a net's Python layer module in the
    working directory imports, with no PYTHONPATH (the root's launcher clears it)."""
    params = _net(tmp_path)
    out = Path(params["out"])
    assert caffe.run_program("init_weights", params, cwd=tmp_path) == str(out)
    first = out.read_bytes()
    caffe.run_program("init_weights", params, cwd=tmp_path)
    assert out.read_bytes() == first and len(first) > 2 * 3 * 4  # seeded: the same weights


def test_a_program_runs_with_a_tmpdir_the_root_cannot_bind(caffe, tmp_path, monkeypatch):
    """TMPDIR under /var, which is the root's own (read-only) inside: the program still runs."""
    if os.environ.get("UPCALL_CAFFE_PYTHON") or not os.access("/var/tmp", os.W_OK):
        pytest.skip("needs the bullseye root and a writable /var/tmp")
    monkeypatch.setattr(tempfile, "tempdir", "/var/tmp")
    params = _net(tmp_path)
    assert caffe.run_program("init_weights", params, cwd=tmp_path) == params["out"]
