"""What ``upcall search`` varies: one table of parameters, and a trial's job folder from them.

Each :class:`Param` is one Optuna distribution and says where its value goes: a field of
:class:`upcall.job.solver.SolverSettings` ("solver"), a keyword of
:func:`upcall.job.nets.make_job` ("job": the batch size), or the network itself. An option
that ``upcall nets`` gains later (class weights, augmentation) joins the search as one more row
of :func:`search_space`, by the name of its ``make_job`` keyword (with a converter in
:data:`CONVERTERS` when ``make_job`` takes an object rather than the flag's text): class weights
and online augmentation are searched that way, and so are a registry network's builder
keywords (``--net-params``: WhaleNet's levers such as ``label_smoothing`` or ``background``).

Class balance is left out: it is a property of the lists (``upcall lists --balance``), so each
choice would need its own dataset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from upcall.errors import UpcallError

if TYPE_CHECKING:
    import optuna

    from upcall.job.datasetinfo import DatasetInfo
    from upcall.job.nets import Job

TARGETS = ("solver", "job", "network")


def _class_weights(text: str, seed: int) -> Any:
    from upcall.network.classweights import parse_class_weights

    return parse_class_weights(text)


def _augment(text: str, seed: int) -> Any:
    from upcall.network.augment_layer import parse_augment

    return parse_augment(text, seed=seed)


def _net_params(text: str, seed: int) -> Any:
    """``none``, or comma-separated ``KEY=VALUE`` builder keywords (as ``upcall nets
    --net-param``, e.g. ``time_pool=true,label_smoothing=0.1``)."""
    from upcall.network.load import parse_net_params

    return {} if text == "none" else parse_net_params(text.split(","))


# make_job keyword -> (flag text, the trial's seed) -> the value make_job takes
CONVERTERS: dict[str, Callable[[str, int], Any]] = {
    "class_weights": _class_weights,
    "augment": _augment,
    "net_params": _net_params,
}


@dataclass(frozen=True)
class Param:
    """One searched parameter: categorical ``choices``, or a number in [``low``, ``high``]."""

    name: str  # Optuna's parameter name: the SolverSettings field or make_job keyword
    target: str  # "solver", "job" or "network": where the value goes (see the module docstring)
    choices: tuple = ()  # categorical when not empty
    low: float | None = None
    high: float | None = None
    log: bool = False  # sample on a log scale (learning rates)
    integer: bool = False

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"{self.name}: target {self.target!r} is not one of {TARGETS}")

    def suggest(self, trial: optuna.Trial) -> Any:
        """This parameter's value for ``trial`` (Optuna's sampler chooses)."""
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


def search_space(
    *,
    networks: Sequence[str],
    lr_range: tuple[float, float],
    batch_sizes: Sequence[int],
    solver_types: Sequence[str],
    lr_policies: Sequence[str],
    epochs: tuple[int, int],
    class_weights: Sequence[str] = ("none",),
    augment: Sequence[str] = ("none",),
    net_params: Sequence[str] = ("none",),
) -> tuple[Param, ...]:
    """The table the study searches; checks each range and choice."""
    from upcall.job.solver import LR_POLICIES, SOLVER_TYPES

    low, high = lr_range
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
        raise UpcallError(f"--lr-range needs 0 < LOW <= HIGH, got {low:g},{high:g}")
    if not batch_sizes or min(batch_sizes) < 1:
        raise UpcallError(f"--batch-sizes must be at least 1, got {list(batch_sizes)}")
    if not 1 <= epochs[0] <= epochs[1]:
        raise UpcallError(f"--epochs needs 1 <= LOW <= HIGH, got {epochs[0]},{epochs[1]}")
    for what, given, known in (
        ("--solver-types", solver_types, SOLVER_TYPES),
        ("--lr-policies", lr_policies, LR_POLICIES),
    ):
        unknown = [x for x in given if x not in known] or ([] if given else ["(none)"])
        if unknown:
            raise UpcallError(f"{what}: {unknown[0]} is not one of {', '.join(known)}")
    if not networks:
        raise UpcallError("--networks: no network to search")
    for flag, name, given in (
        ("--class-weights", "class_weights", class_weights),
        ("--augment", "augment", augment),
        ("--net-params", "net_params", net_params),
    ):
        if not given:
            raise UpcallError(f"{flag}: no choice given")
        for text in given:
            try:
                CONVERTERS[name](text, 0)
            except UpcallError as e:  # the parsers' messages may name the flag already
                message = str(e)
                raise UpcallError(
                    message if message.startswith(flag) else f"{flag} {text!r}: {message}"
                ) from None
    _check_net_params(networks, net_params)
    return (
        Param("network", "network", choices=tuple(networks)),
        Param("base_lr", "solver", low=low, high=high, log=True),
        Param("batch_size", "job", choices=tuple(batch_sizes)),
        Param("solver_type", "solver", choices=tuple(solver_types)),
        Param("lr_policy", "solver", choices=tuple(lr_policies)),
        Param("epochs", "solver", low=epochs[0], high=epochs[1], integer=True),
        Param("class_weights", "job", choices=tuple(class_weights)),
        Param("augment", "job", choices=tuple(augment)),
        Param("net_params", "job", choices=tuple(net_params)),
    )


def _check_net_params(networks: Sequence[str], choices: Sequence[str]) -> None:
    """Every ``--net-params`` choice must build every searched network."""
    from upcall.network.load import load_network

    for text in choices:
        params = _net_params(text, 0)
        for network in networks if params else ():
            try:
                load_network(network, params)
            except UpcallError as e:
                raise UpcallError(f"--net-params {text!r}: {e}") from None


def fitting_networks(dataset: DatasetInfo, names: Sequence[str] | None = None) -> list[str]:
    """``names`` (default: every registry network) that can be built for ``dataset``; a named
    network that cannot is an error, unnamed ones are left out quietly."""
    from upcall.job.nets import make_job
    from upcall.job.solver import SolverSettings
    from upcall.network.zoo import NETWORKS

    fitting = []
    for name in names or list(NETWORKS):
        try:
            make_job(name, dataset, SolverSettings(epochs=1))
        except UpcallError as e:
            if names:
                raise UpcallError(f"--networks: {e}") from None
            continue
        fitting.append(name)
    if not fitting:
        raise UpcallError(f"{dataset.path}: no registry network fits this dataset")
    return fitting


def trial_job(
    space: Sequence[Param],
    values: Mapping[str, Any],
    dataset: DatasetInfo,
    *,
    name: str,
    seed: int,
    gpu: bool = False,
) -> Job:
    """The job folder's files for one trial's ``values``, named ``name``, with Caffe seed ``seed``."""
    from upcall.job.nets import make_job
    from upcall.job.solver import SolverSettings

    solver = {p.name: values[p.name] for p in space if p.target == "solver"}
    job_args = {
        p.name: CONVERTERS[p.name](values[p.name], seed) if p.name in CONVERTERS else values[p.name]
        for p in space
        if p.target == "job"
    }
    network = next(values[p.name] for p in space if p.target == "network")
    settings = SolverSettings(**solver, seed=seed, gpu=gpu)
    return replace(make_job(network, dataset, settings, **job_args), name=name)
