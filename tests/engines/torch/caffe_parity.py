"""The torch engine against real Caffe 1.0, net by net: one shared harness for layer tests.

A :class:`Case` is a tiny NetParameter text (Input layer(s), the layers under test, a loss or
just outputs). :func:`run_parity` builds every case as the torch engine's CaffeNet with random
weights and inputs (seeded), runs forward and backward, then runs ALL cases in ONE real-Caffe
process (pycaffe in the Caffe root: ``caffe_parity_pycaffe.py``) with the same weights, inputs
and top gradients, and compares:

- every blob the torch net makes (Caffe's split blobs aside), shape and values;
- the nets' outputs, each layer's blob shapes, and the loss weights Caffe puts on its outputs;
- with ``backward``: the gradient w.r.t. every input (``force_backward``) and every learnable
  blob (lr_mult ≠ 0). The objective is Σ loss_weight·loss over the loss tops plus Σ R·top over
  the other outputs, R a seeded random top gradient that Caffe gets as the top's diff;
- with ``load_weights=False``: both sides keep their own fillers, and the filled blobs must agree
  (for deterministic fillers: constant, PReLU's 0.25 ...).

Values agree when ``|torch - caffe| <= rtol·|caffe| + atol·max(1, max|caffe|)`` elementwise.

Use it with one module-scoped run and one test per case::

    CASES = [Case("power", NET_TEXT), ...]

    @pytest.fixture(scope="module")
    def parity(caffe, tmp_path_factory):
        return run_parity(caffe, tmp_path_factory.mktemp("parity"), CASES)

    @pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
    def test_matches_caffe(parity, case):
        parity.check(case.name)
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from google.protobuf import text_format

from upcall.engines.torch import CaffeNet
from upcall.engines.torch.layers import INPUT_TYPES
from upcall.proto import caffe_pb2

PROGRAM = Path(__file__).with_name("caffe_parity_pycaffe.py")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True, eq=False)
class Case:
    """One tiny net, run on both engines.

    name : unique within a run; a file stem (letters, digits, ``_.-``).
    net : NetParameter text; its Input layers give the input shapes.
    inputs : arrays for some Input tops (labels, positive values ...); the rest are seeded
        standard normal draws (float32).
    weights : arrays for some learnable blobs, by ``(layer, index)``; the rest are seeded
        normal draws × 0.5. Ignored with ``load_weights=False``.
    backward : compare gradients too (layers whose Caffe backward is NOT_IMPLEMENTED: False).
    force_backward : Caffe's net flag, so that inputs get gradients; False (compare parameter
        gradients only) needs a loss in the net, as Caffe then back-propagates from losses only.
    load_weights : False keeps each engine's fillers and compares what they made.
    phase : "TRAIN" or "TEST".
    """

    name: str
    net: str
    inputs: Mapping[str, np.ndarray] = field(default_factory=dict)
    weights: Mapping[tuple[str, int], np.ndarray] = field(default_factory=dict)
    backward: bool = True
    force_backward: bool = True
    load_weights: bool = True
    phase: str = "TRAIN"
    rtol: float = 1e-5
    atol: float = 1e-6
    seed: int = 0


class Parity:
    """The outcome of :func:`run_parity`: the problems found, by case name."""

    def __init__(self, problems: dict[str, list[str]]):
        self.problems = problems

    def check(self, name: str) -> None:
        """AssertionError listing what differs between the engines for case ``name``."""
        if name not in self.problems:
            raise KeyError(f"no parity case named {name!r}")
        if self.problems[name]:
            raise AssertionError(f"case {name}:\n  " + "\n  ".join(self.problems[name]))

    def check_all(self) -> None:
        bad = [f"{n}: {'; '.join(p)}" for n, p in self.problems.items() if p]
        if bad:
            raise AssertionError("\n".join(bad))


@dataclass
class _Ours:
    net: CaffeNet
    blobs: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]  # "diff/<input>", "pdiff/<layer>/<i>" (only those computed)
    params: dict[str, np.ndarray]  # "param/<layer>/<i>"
    written: set[str]  # the blobs layers make (inputs overwritten in place included)


def run_parity(caffe, folder: Path, cases: Sequence[Case], *, timeout: float = 300) -> Parity:
    """Run ``cases`` on the torch engine and, in one process, on real Caffe; compare them.

    ``caffe`` is the ``upcall.engines.caffe.root`` module (the ``caffe`` fixture); ``folder``
    an empty directory under /tmp (``tmp_path_factory.mktemp``) that Caffe can be bound to.
    """
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), f"parity case names repeat: {names}"
    assert all(_NAME.match(n) for n in names), f"parity case names must be file stems: {names}"
    problems: dict[str, list[str]] = {}
    ours: dict[str, _Ours] = {}
    for case in cases:
        try:
            ours[case.name] = _torch_side(case, folder)
        except Exception as e:  # the torch engine refused or failed: that is the finding
            problems[case.name] = [f"torch engine: {type(e).__name__}: {e}"]
    sent = [c for c in cases if c.name in ours]
    crashes = _caffe_side(caffe, folder, sent, timeout)
    for case in sent:
        result = folder / f"{case.name}-caffe.json"
        if case.name in crashes:
            problems[case.name] = [crashes[case.name]]
        elif not result.is_file():
            problems[case.name] = ["real Caffe wrote no result"]
        elif "error" in (theirs := json.loads(result.read_text())):
            problems[case.name] = [f"real Caffe: {theirs['error']}"]
        else:
            with np.load(folder / f"{case.name}-caffe.npz") as arrays:
                problems[case.name] = _compare(case, ours[case.name], theirs, dict(arrays))
    return Parity(problems)


# ---- the torch side -----------------------------------------------------------------------


def _torch_side(case: Case, folder: Path) -> _Ours:
    proto = text_format.Parse(case.net, caffe_pb2.NetParameter())
    phase = caffe_pb2.Phase.Value(case.phase)
    net = CaffeNet(proto, phase=phase, seed=case.seed)
    rng = np.random.default_rng(case.seed)
    sent: dict[str, np.ndarray] = {}
    inputs = {}
    for name in net.input_names:
        shape = net.blob_shapes[name]
        given = case.inputs.get(name)
        value = rng.standard_normal(shape) if given is None else np.asarray(given)
        value = np.ascontiguousarray(value, dtype=np.float32).reshape(shape)
        sent[f"input/{name}"] = value
        inputs[name] = torch.from_numpy(value.copy()).requires_grad_(
            case.backward and case.force_backward
        )
    params = {}
    with torch.no_grad():
        for spec in net.param_specs():
            key = f"param/{spec.layer}/{spec.index}"
            if case.load_weights:
                given = case.weights.get((spec.layer, spec.index))
                value = rng.standard_normal(spec.tensor.shape) * 0.5 if given is None else given
                spec.tensor.copy_(torch.as_tensor(np.asarray(value, np.float32)))
                sent[key] = spec.tensor.numpy().copy()
            params[key] = spec.tensor.detach().numpy().copy()
    blobs = net(inputs)
    written = _written(proto)
    grads = {}
    if case.backward:
        terms = [w * blobs[t].sum() for t, w in net.loss_weights.items()]
        for name in net.output_names:
            if name in net.loss_weights or name not in written:
                continue
            r = rng.standard_normal(net.blob_shapes[name]).astype(np.float32)
            sent[f"topdiff/{name}"] = r
            if blobs[name].requires_grad:
                terms.append((blobs[name] * torch.from_numpy(r)).sum())
        if any(t.requires_grad for t in terms):
            torch.stack([t for t in terms if t.requires_grad]).sum().backward()
        if case.force_backward:
            for name, t in inputs.items():
                grads[f"diff/{name}"] = _grad(t)
        for spec in net.param_specs():
            if spec.tensor.requires_grad:
                grads[f"pdiff/{spec.layer}/{spec.index}"] = _grad(spec.tensor)
    text = case.net + ("\nforce_backward: true\n" if case.backward and case.force_backward else "")
    (folder / f"{case.name}.prototxt").write_text(text, encoding="utf-8")
    np.savez(folder / f"{case.name}-in.npz", **sent)
    values = {k: v.detach().numpy().copy() for k, v in blobs.items()}
    return _Ours(net, values, grads, params, written)


def _written(proto: caffe_pb2.NetParameter) -> set[str]:
    """The blobs some layer makes: an input a layer overwrites in place is one too."""
    return {t for lp in proto.layer if lp.type not in INPUT_TYPES for t in lp.top}


def _grad(t: torch.Tensor) -> np.ndarray:
    # no gradient reached it (a label, an unused input): Caffe's diff stays 0
    return np.zeros(t.shape, np.float32) if t.grad is None else t.grad.numpy().copy()


# ---- the Caffe side -----------------------------------------------------------------------


def _caffe_side(caffe, folder: Path, cases: Sequence[Case], timeout: float) -> dict[str, str]:
    """Run the pycaffe program on ``cases``; returns the abort message of each case that ended
    the process (a glog FATAL), after which the program runs again on the cases left."""
    program = folder / PROGRAM.name
    shutil.copyfile(PROGRAM, program)
    crashes: dict[str, str] = {}
    left = list(cases)
    while left:
        params = {
            "dir": str(folder),
            "cases": [
                {
                    "name": c.name,
                    "phase": c.phase,
                    "backward": c.backward,
                    "load_weights": c.load_weights,
                }
                for c in left
            ],
        }
        (folder / "params.json").write_text(json.dumps(params), encoding="utf-8")
        result = caffe.run_tool(
            "python3",
            str(program),
            str(folder / "params.json"),
            binds=(folder,),
            cwd=folder,
            timeout=timeout,
            check=False,
            env={"GLOG_minloglevel": "2"},  # pycaffe logs every layer of every net otherwise
        )
        if result.returncode == 0:
            break
        started = [
            line.removeprefix("parity case: ")
            for line in result.stderr.splitlines()
            if line.startswith("parity case: ")
        ]
        if not started:  # not one case began: pycaffe itself is broken
            detail = caffe.tool_error("real Caffe", result.returncode, result.stderr)
            return {**crashes, **{c.name: str(detail) for c in left}}
        crashes[started[-1]] = str(caffe.tool_error("real Caffe", result.returncode, result.stderr))
        left = left[[c.name for c in left].index(started[-1]) + 1 :]
    return crashes


# ---- comparing ----------------------------------------------------------------------------


def _compare(case: Case, ours: _Ours, theirs: dict, arrays: dict[str, np.ndarray]) -> list[str]:
    net, problems = ours.net, []
    if sorted(theirs["outputs"]) != net.output_names:
        problems.append(f"outputs: torch {net.output_names}, Caffe {sorted(theirs['outputs'])}")
    for layer, module in zip(net.layer_names, net.layers, strict=True):
        mine = [list(t.shape) for t in module.blobs()]
        if mine != theirs["params"].get(layer, []):
            problems.append(
                f"layer {layer} blob shapes: torch {mine}, Caffe {theirs['params'].get(layer, [])}"
            )
    if problems:
        return problems
    for name, value in ours.blobs.items():
        problems += _close(value, arrays.get(f"blob/{name}"), case, f"blob {name}")
    if not case.load_weights:
        for key, value in ours.params.items():
            problems += _close(value, arrays.get(key), case, f"filled {key}")
    if case.backward:  # the loss weights Caffe put on its outputs' diffs at setup
        for name in net.output_names:
            if name in ours.written:
                weight = np.full(net.blob_shapes[name], net.loss_weights.get(name, 0.0), np.float32)
                problems += _close(
                    weight, arrays.get(f"topdiff0/{name}"), case, f"loss weight of {name}"
                )
    for key, value in ours.grads.items():
        what = f"gradient of {key.split('/', 1)[1]}"
        problems += _close(value, arrays.get(key), case, what)
    return problems


def _close(got: np.ndarray, want: np.ndarray | None, case: Case, what: str) -> list[str]:
    if want is None:
        return [f"{what}: Caffe has no such blob"]
    if got.shape != want.shape:
        return [f"{what}: shape {got.shape}, Caffe {want.shape}"]
    got, want = got.astype(np.float64), want.astype(np.float64)
    finite = np.isfinite(want)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    if (~finite & ~same).any() or not np.isfinite(got[finite]).all():
        return [
            f"{what}: non-finite values differ (torch {got.ravel()[:6]}, Caffe {want.ravel()[:6]})"
        ]
    scale = max(1.0, float(np.abs(want[finite]).max())) if finite.any() else 1.0
    err = np.where(finite, np.abs(got - want), 0.0)
    bad = err > case.rtol * np.abs(want) + case.atol * scale
    if not bad.any():
        return []
    i = np.unravel_index(int(np.argmax(np.where(bad, err, -1))), got.shape)
    return [
        f"{what}: {int(bad.sum())} of {got.size} values differ; worst at {tuple(map(int, i))}: "
        f"torch {got[i]:.8g}, Caffe {want[i]:.8g}"
    ]
