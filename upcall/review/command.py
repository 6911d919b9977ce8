"""``upcall review DETECTIONS --out VERIFIED``: verify detections in the browser.

DETECTIONS: a ``detect`` output folder (its per-recording tables; the recordings found by its
recordings.csv, or under ``--audio ROOT``) or selection tables. Each verdict goes at once to
``VERIFIED/<rel>.selections.txt``; starting again on the same VERIFIED continues.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from upcall import cliargs
from upcall.errors import UpcallError

HELP = "verify detections in the browser (verdicts to Raven tables; a sample's precision)"
ORDERS = ("score", "time", "random")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "detections",
        nargs="+",
        type=Path,
        metavar="DETECTIONS",
        help="a detect output folder, or selection tables (one per recording, named by the "
        "pairing rule: rec.wav.detections.txt, rec.wav.selections.txt, ...)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="VERIFIED",
        help="where the verdicts go: VERIFIED/<rel>.selections.txt per recording, the detection "
        "table with the columns Verified (yes/no/unsure) and Note; reopening continues",
    )
    parser.add_argument(
        "--audio",
        type=Path,
        metavar="ROOT",
        help="the recordings' folder (the rel paths of the detect folder under it); default: "
        "where recordings.csv says detect read them. Nothing outside ROOT is served",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    parser.add_argument(
        "--order",
        choices=ORDERS,
        help="the order detections are shown in: highest score first, clock time, or random "
        "(--seed); default score, and with --sample the sample's own random order",
    )
    parser.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="verify a random sample of N detections, stratified by score, and show the "
        "precision per score band and overall (95 %% intervals) and the estimated true up-calls",
    )
    cliargs.add_seed(parser, "the sample and the random order")
    cliargs.add_threshold(parser, "only detections scoring at least P are reviewed (rows "
                          "without a score: all)")  # fmt: skip


def session(args: argparse.Namespace):
    """The review's Session: the store, its detections in order, the sample."""
    from upcall.review.app import Session
    from upcall.review.store import Store, listed, ordered

    if args.audio is not None and not args.audio.is_dir():
        raise UpcallError(f"{args.audio}: --audio must be a folder of recordings")
    store = Store(args.detections, args.out, audio_root=args.audio)
    items = listed(store, threshold=args.threshold)
    if not store.recordings:
        raise UpcallError(f"{', '.join(map(str, args.detections))}: no detection tables in it")
    if args.sample is None:
        return Session(store, ordered(store, items, args.order or "score", args.seed))
    from upcall.review.sampling import draw_sample

    scores = []
    for it in items:
        s = store.recordings[it.rec].selections[it.row]
        if s.score is None:
            raise UpcallError(f"{store.recordings[it.rec].table}:{s.row}: --sample needs a "
                              "Score on every row (the strata are score bands)")  # fmt: skip
        scores.append(s.score)
    sample = draw_sample(scores, args.sample, args.seed)
    chosen = [items[i] for i in sample.indices]
    if args.order is not None:
        chosen = ordered(store, chosen, args.order, args.seed)
    return Session(store, chosen, sample, items)


def run(args: argparse.Namespace) -> int:
    from upcall.review.app import serve

    logging.basicConfig(level=logging.INFO, format="upcall review: %(message)s")
    logging.getLogger("waitress").setLevel(logging.WARNING)
    serve(session(args), args.host, args.port)
    return 0
