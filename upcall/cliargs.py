"""The flags several ``upcall`` commands share, declared once: the same spelling, default and
meaning in every command that takes them.

- ``--seed N``: the seed of every random draw the command makes; default :data:`SEED` (0), so a
  command run twice gives the same result. ``--seed random`` draws one and prints it.
- ``--gpu [N]``: CUDA device N (bare ``--gpu``: device 0); without it, the CPU.
- ``--threads N``: CPU threads of one process (default: all available cores).
- ``--workers N``: how many workers run at once on this machine; each command's help says what
  one worker is and does. Default: all cores where one worker keeps one core busy, 1 where one
  worker already uses every core (torch's threads).
- ``--threshold P``: a score (a whale probability) of at least P counts as a whale call;
  default :data:`THRESHOLD` (0.5), in ``detect``, ``evaluate`` and ``report``.
- ``--out``: where the command writes; the three commands that took OUT as a positional
  (``synth``, ``synth-recording``, ``demo``) still accept it, hidden from their help.
- ``--epochs N``: each command that trains says in its help why its default is what it is.
- ``--networks``, ``--snapshot``: the same words in each command that takes them.

Choices come from the registries (spectrogram modes, engines, networks), which the caller passes
in: this module imports only the standard library, so every layer can use it.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

SEED = 0
THRESHOLD = 0.5
RANDOM_SEED = "random"


def seed_value(text: str) -> int:
    """``--seed``'s type: an integer, or ``random``: one drawn now and printed (stderr), so the
    run can be repeated with it."""
    if text == RANDOM_SEED:
        seed = secrets.randbelow(2**31)  # a non-negative int32: Caffe's random_seed, torch's seed
        print(f"seed {seed} (drawn at random; --seed {seed} repeats it)", file=sys.stderr)
        return seed
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an integer or {RANDOM_SEED!r}, not {text!r}") from None


class _Seed(argparse.Action):
    """Stores ``--seed`` and notes that it was given (:func:`given`)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, "_given_" + self.dest, True)


def given(args: argparse.Namespace, dest: str) -> bool:
    """Whether a flag declared here with that note (``--seed``) was on the command line, not
    left at its default: ``upcall fit --recipe FILE`` keeps the file's seed unless it was."""
    return bool(getattr(args, "_given_" + dest, False))


def add_seed(parser: argparse.ArgumentParser | argparse._ArgumentGroup, what: str) -> None:
    """``--seed N`` (default 0); ``what`` says what it seeds in this command."""
    parser.add_argument(
        "--seed",
        type=seed_value,
        default=SEED,
        action=_Seed,
        metavar="N",
        help=f"{what}; {RANDOM_SEED}: draw one and print it (default {SEED})",
    )


def add_gpu(parser: argparse.ArgumentParser | argparse._ArgumentGroup, what: str) -> None:
    """``--gpu [N]``: CUDA device N, bare ``--gpu`` device 0 (``upcall nets``'s old switch
    spelling); absent, None: the CPU. ``what`` says what runs on device N."""
    parser.add_argument(
        "--gpu",
        type=int,
        nargs="?",
        const=0,
        metavar="N",
        help=f"{what} (bare --gpu: device 0; default: the CPU)",
    )


def add_threads(parser: argparse.ArgumentParser | argparse._ArgumentGroup, what: str) -> None:
    """``--threads N``: CPU threads of one process; None: all available cores."""
    parser.add_argument(
        "--threads", type=int, metavar="N", help=f"CPU threads {what} (default: all cores)"
    )


def add_workers(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    one: str,
    *,
    default: int | None = None,
    why: str = "",
) -> None:
    """``--workers N``: workers run at once on this machine; ``one`` says what one does.

    None (the default) is all cores, for work where one worker keeps one core busy; where one
    worker already uses every core, the command passes ``default=1`` and ``why``.
    """
    shown = "all cores" if default is None else f"{default}{': ' + why if why else ''}"
    parser.add_argument(
        "--workers",
        type=int,
        default=default,
        metavar="N",
        help=f"workers at once on this machine; one worker {one} (default {shown})",
    )


def add_threshold(parser: argparse.ArgumentParser | argparse._ArgumentGroup, here: str) -> None:
    """``--threshold P`` (default 0.5): a score at least P counts as a whale call; ``here``
    says what that decides in this command."""
    parser.add_argument(
        "--threshold",
        type=float,
        default=THRESHOLD,
        metavar="P",
        help="a window, clip or detection whose score (whale probability) is at least P counts "
        f"as a whale call; here, {here} (default {THRESHOLD})",
    )


def add_labels(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, positive: str, *, column: bool = True
) -> None:
    """``--positive LABEL[,LABEL]`` (repeatable; default: every label) and, with ``column``,
    ``--label-column C``: which selections of a Raven table count; ``positive`` says what the
    others become here. :func:`positive_labels` reads them."""
    if column:
        parser.add_argument(
            "--label-column",
            metavar="C",
            help="the tables' label column (default: Annotation, else the first of Tags, "
            "Species, Call Type, Label, Class)",
        )
    parser.add_argument(
        "--positive",
        action="append",
        metavar="LABEL[,LABEL]",
        help=f"labels of up-calls; {positive} (default: every label)",
    )


def positive_labels(args: argparse.Namespace) -> tuple[str, ...] | None:
    """The labels ``--positive`` names (comma lists, repeated flags), or None: every label."""
    from upcall.errors import UpcallError

    if not getattr(args, "positive", None):
        return None
    labels = tuple(dict.fromkeys(x.strip() for p in args.positive for x in p.split(",")))
    if "" in labels:
        raise UpcallError(f"--positive needs labels (LABEL[,LABEL]), got {args.positive}")
    return labels


class _OldOut(argparse.Action):
    """The old positional OUT: stored as ``out``, a Path, as ``--out`` is. (No ``type``: argparse
    would convert the SUPPRESS default too, and then count the positional as given.)"""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        namespace.out = Path(values)


def add_out(
    parser: argparse.ArgumentParser,
    what: str,
    *,
    metavar: str = "DIR",
    required: bool = False,
    positional: bool = False,
    default: Path | None = None,
) -> None:
    """``--out PATH``, ``what`` the command writes there; ``positional``: OUT alone, the old
    spelling, is still accepted (not both), hidden from help."""
    if not positional:
        parser.add_argument(
            "--out", type=Path, metavar=metavar, required=required, default=default, help=what
        )
        return
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--out", type=Path, metavar=metavar, default=default, help=what)
    group.add_argument(
        "old_out",
        nargs="?",
        metavar=metavar,
        action=_OldOut,
        default=argparse.SUPPRESS,  # no attribute, and never "seen" when absent
        help=argparse.SUPPRESS,
    )


def add_epochs(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: int, why: str
) -> None:
    """``--epochs N``; ``why`` says why this command's default is ``default``."""
    parser.add_argument(
        "--epochs",
        type=int,
        default=default,
        metavar="N",
        help=f"training epochs (default {default}: {why})",
    )


def described(registry: Mapping[str, object]) -> str:
    """``name: description`` of each entry of a registry, for a help text: the entry's
    ``description``, else the first line of its class's docstring."""

    def text(entry: object) -> str:
        doc = (getattr(entry, "description", None) or type(entry).__doc__ or "").strip()
        line = doc.splitlines()[0].rstrip(".") if doc else ""
        return line[:1].lower() + line[1:]

    return "; ".join(f"{name}: {text(e)}" if text(e) else name for name, e in registry.items())


def add_snapshot(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--snapshot N``: the snapshot of iteration N; None: the latest complete one."""
    parser.add_argument(
        "--snapshot",
        type=int,
        metavar="N",
        help="use the snapshot of iteration N (default: the latest)",
    )


def add_networks(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    names: Iterable[str],
    *,
    default: str | None,
    paths: bool = True,
    none: str = "",
) -> None:
    """``--networks`` (also ``--network``): comma-separated names from the network registry
    ``names``, or (``paths``) train_val .prototxt paths; ``none`` says what no value means."""
    kinds = "registry names or train_val .prototxt paths" if paths else "registry names"
    shown = f"default {default}" if default is not None else f"default: {none}"
    parser.add_argument(
        "--networks",
        "--network",
        default=default,
        metavar="NAMES",
        help=f"comma-separated {kinds} ({', '.join(names)}; {shown})",
    )


MODEL_HELP = (
    "a trained job folder, a model.onnx or Caffe folder from `upcall export`, a DIGITS model "
    "download (.tar.gz/.zip), or a folder of deploy.prototxt + .caffemodel + labels.txt"
)


def add_model(parser: argparse.ArgumentParser, dest: str = "model", metavar: str = "MODEL") -> None:
    """The positional model of ``classify``, ``detect`` and ``export``: anything
    :func:`upcall.inference.load_model` opens."""
    parser.add_argument(dest, type=Path, metavar=metavar, help=MODEL_HELP)
