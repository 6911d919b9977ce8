"""One long synthetic recording with up-calls at known times (``upcall synth-recording``).

Detection is tried on continuous audio, so this writes what a moored recorder would hear: the
signal model of :mod:`upcall.audio.sounds` laid out in time. Up-calls come in bouts (2–8 calls, 10–60 s
apart; bouts minutes apart), as right whales call; ships pass over minutes with slowly drifting
tonals; clicks, flow noise and hard negatives (down-sweeps, moans, humpback-like units…) arrive at
random. The truth goes to a Raven selection table beside the audio (OUT.selections.txt): the
up-calls, and with ``--label-others`` the other sounds an analyst would box too, with their
labels (:data:`OTHER_LABELS`; ships as one box over the stretch where they are loud).
``--difficulty`` chooses the calls' model as for ``upcall synth``: with ``hard`` (the default) the
calls are as faint, echoing and varied as the clips' labelled calls; the clips' label noise (calls
the analyst missed) has no counterpart here, so the table lists every call in the audio.
``--regime`` lays more noise over the same recording (:data:`REGIMES`: ``shipping``, a busy lane);
the default adds none, so its output is what it always was.

The audio is made and written block by block (noise filters carry their state and ships have an
analytic phase, so blocks join without seams), so an hour needs little memory. Every random
choice derives from the seed; each event has its own stream, so a block can render any event
that reaches into it.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from upcall.audio import sounds
from upcall.audio.raven import Selection, write_table
from upcall.errors import UpcallError
from upcall.fsutil import atomic_path
from upcall.progress import progress

HELP = (
    "Write one long synthetic recording (WAV, FLAC or AIFF) with up-calls in bouts and a Raven "
    "truth table."
)

BLOCK_SECONDS = 30.0
NOISE_DBFS = -34.0  # ambient RMS in the file: quiet enough that loud clicks rarely clip
STREAM = 2  # seed-sequence tag for recordings, apart from upcall.audio.synth.SPLITS' clip streams
# mean seconds between events of each kind (Poisson arrivals)
EVENT_GAPS_S = {"transient": 8.0, "confounder": 20.0, "flow": 90.0}
# libsndfile format per file suffix: the data must be what the name says.
FORMATS = {".wav": "WAV", ".flac": "FLAC", ".aiff": "AIFF", ".aif": "AIFF"}
# --label-others: each hard negative's label, as an analyst would name it (sounds.CONFOUNDERS);
# short up-sweeps and sweeps above the band have no common name: "unknown"
OTHER_LABELS = {
    "downsweep": "downsweep",
    "moan": "moan",
    "short": "unknown",
    "high": "unknown",
    "humpback": "humpback",
}
SHIP_LABEL = "ship"
# A ship is boxed where its level is within 6 dB of closest approach (|t - closest| <= √3 scale),
# and only one loud enough to see: its strongest line above the noise around it there.
SHIP_LOUD_DB = 6.0


@dataclass(frozen=True)
class Regime:
    """A noise regime (``--regime``): extra ships and clicks laid over the default recording of
    the same seed, from a stream of their own, so the calls, hard negatives, ambient noise and
    the default's own ships stay exactly as they are (a detector meets the same calls in a
    noisier sea)."""

    ship_minutes: float  # an extra ship every this many minutes on average (Poisson); 0: none
    ship_db: float  # an extra ship's level above the default's draw (noise.SHIP_LEVEL)
    doppler: float  # an extra ship's Doppler drift, times the default's draw (closer, faster)
    transient_gap_s: float  # mean seconds between extra clicks and knocks; 0: none


# shipping: a busy lane: a loud ship every 3 min on average with 3x the pitch drift, and extra
# clicks every 2.5 s (benchmarks/bench_review.py: a detector trained on default noise meets it)
REGIMES = {
    "default": Regime(ship_minutes=0.0, ship_db=0.0, doppler=1.0, transient_gap_s=0.0),
    "shipping": Regime(ship_minutes=3.0, ship_db=10.0, doppler=3.0, transient_gap_s=2.5),
}
EXTRA = 3  # the rng key of a regime's extra noise (0: the plan, 1: events, 2: ambient blocks)


@dataclass(frozen=True)
class RecordingSettings:
    minutes: float
    seed: int = 0
    rate: int = sounds.RATE  # Hz; sounds keep their frequencies whatever the rate
    difficulty: str = "hard"  # a name in sounds.DIFFICULTIES: how faint and varied calls are
    label_others: bool = False  # the truth also boxes hard negatives and ships, with labels
    regime: str = "default"  # a name in REGIMES: the shipping and clicks around the calls

    def check(self) -> None:
        if not 0 < self.minutes <= 24 * 60:
            raise UpcallError(f"--minutes must be in (0, 1440], got {self.minutes}")
        if not 1000 <= self.rate <= 192000:
            # below 1000 Hz the call band's harmonics and the hard negatives would alias
            raise UpcallError(f"--rate must be between 1000 and 192000 Hz, got {self.rate}")
        if self.seed < 0:
            raise UpcallError(f"--seed must be zero or positive, got {self.seed}")
        if self.difficulty not in sounds.DIFFICULTIES:
            raise UpcallError(
                f"--difficulty must be one of {', '.join(sounds.DIFFICULTIES)}, "
                f"got {self.difficulty!r}"
            )
        if self.regime not in REGIMES:
            raise UpcallError(f"--regime must be one of {', '.join(REGIMES)}, got {self.regime!r}")

    @property
    def seconds(self) -> float:
        return self.minutes * 60.0


@dataclass(frozen=True)
class Event:
    kind: str  # "upcall", "confounder", "transient" or "flow"
    start_s: float
    stream: int  # index of this event's own random stream


def _rng(settings: RecordingSettings, *key: int) -> np.random.Generator:
    return np.random.default_rng([settings.seed, STREAM, *key])


def _bout_times(rng: np.random.Generator, seconds: float) -> list[float]:
    times = []
    t = rng.uniform(0.0, min(120.0, seconds))
    while t < seconds:
        call = t
        for _ in range(rng.integers(2, 9)):
            times.append(call)
            call += rng.uniform(10.0, 60.0)
        t = call + 60.0 + rng.exponential(240.0)  # minutes of silence between bouts
    return times


@dataclass(frozen=True)
class Plan:
    events: list[Event]
    ships: list[tuple[sounds.Ship, float]]  # each ship and its amplitude (x unit ambient noise)
    ambient: sounds.Ambient


def plan(settings: RecordingSettings) -> Plan:
    """Every event's kind and time, the ships and the ambient noise, from the seed alone."""
    rng = _rng(settings, 0, 0)
    events = [Event("upcall", t, 0) for t in _bout_times(rng, settings.seconds)]
    for kind, gap in EVENT_GAPS_S.items():
        t = rng.exponential(gap)
        while t < settings.seconds:
            events.append(Event(kind, t, 0))
            t += rng.exponential(gap)
    events = [Event(e.kind, e.start_s, i) for i, e in enumerate(sorted(events, key=_order))]
    ambient = sounds.Ambient.random(rng)
    ships = []
    for _ in range(rng.poisson(1 + settings.minutes / 15)):
        ship = sounds.Ship.random(
            rng,
            closest_s=rng.uniform(-600, settings.seconds + 600),
            scale_s=rng.uniform(60.0, 600.0),
        )
        ships.append((ship, sounds.ship_gain(rng, ship, ambient, settings.rate)))
    return _add_regime(settings, Plan(events, ships, ambient))


def _add_regime(settings: RecordingSettings, base: Plan) -> Plan:
    """``base`` with the regime's extra ships and clicks (streams after the base's events)."""
    regime, seconds = REGIMES[settings.regime], settings.seconds
    rng, events, ships = _rng(settings, EXTRA, 0), list(base.events), list(base.ships)
    if regime.transient_gap_s > 0:
        t = rng.exponential(regime.transient_gap_s)
        while t < seconds:
            events.append(Event("transient", t, len(events)))
            t += rng.exponential(regime.transient_gap_s)
    if regime.ship_minutes > 0:
        for _ in range(rng.poisson(settings.minutes / regime.ship_minutes)):
            ship = sounds.Ship.random(
                rng, closest_s=rng.uniform(-600, seconds + 600), scale_s=rng.uniform(60.0, 600.0)
            )
            gain = sounds.ship_gain(rng, ship, base.ambient, settings.rate)
            ship = replace(ship, doppler=ship.doppler * regime.doppler)
            ships.append((ship, gain * 10 ** (regime.ship_db / 20)))
    return Plan(sorted(events, key=_order), ships, base.ambient)


def _order(event: Event) -> tuple[float, str]:
    return event.start_s, event.kind


def render_event(
    settings: RecordingSettings, event: Event, ambient: sounds.Ambient
) -> tuple[np.ndarray, float, float, str]:
    """The event's samples (relative to unit-RMS ambient noise), its (low, high) Hz band and the
    label an analyst would give it."""
    rng, rate = _rng(settings, 1, event.stream), settings.rate
    noise_rms = math.sqrt(ambient.band_power(0.0, rate / 2, rate))
    difficulty = sounds.get_difficulty(settings.difficulty)
    if event.kind == "upcall":  # the truth box spans the echoes too, as an analyst's would
        sound, lo, hi, _ = sounds.received_call(rng, ambient, rate, difficulty)
        return sound, lo, hi, "upcall"
    if event.kind == "confounder":
        sound, kind, lo, hi = sounds.described_confounder(rng, rate)
        snr = difficulty.call_snr_db(rng)
        return sound * sounds.call_gain(ambient, 50.0, 250.0, rate, snr), lo, hi, OTHER_LABELS[kind]
    if event.kind == "transient":
        return sounds.transient(rng, rate, noise_rms), 0.0, rate / 2, "transient"
    n = int(rng.uniform(2.0, 10.0) * rate)
    return sounds.flow(rng, n, rate, noise_rms) * sounds.envelope(rng, n), 0.0, 15.0, "flow"


def truth(settings: RecordingSettings) -> list[Selection]:
    """The up-calls that lie wholly inside the recording, as Raven selections; with
    ``settings.label_others`` also the hard negatives (cut at the end of the recording) and the
    loud stretch of each audible ship, all in time order."""
    whole = plan(settings)
    rate, seconds = settings.rate, settings.seconds
    selections = []
    for event in whole.events:
        if event.kind == "upcall" or (settings.label_others and event.kind == "confounder"):
            sound, lo, hi, label = render_event(settings, event, whole.ambient)
            first = round(event.start_s * rate)  # where _render_block puts it
            begin, end = first / rate, (first + len(sound)) / rate
            if end <= seconds:
                selections.append(Selection(begin, end, lo, hi, label))
            elif label != "upcall" and begin < seconds:  # as far as the recording goes
                selections.append(Selection(begin, seconds, lo, hi, label))
    if settings.label_others:
        selections += _ship_boxes(settings, whole)
        selections.sort(key=lambda s: (s.begin_s, s.end_s))
    return selections


def _ship_boxes(settings: RecordingSettings, whole: Plan) -> list[Selection]:
    """A box over each audible ship's loud stretch (see SHIP_LOUD_DB), cut to the recording."""
    rate, boxes = settings.rate, []
    half = math.sqrt(10 ** (SHIP_LOUD_DB / 10) - 1)  # level ∝ 1/sqrt(1 + x²)
    for ship, level in whole.ships:
        lines = [k * ship.f0 for k in range(1, len(ship.amps) + 1) if k * ship.f0 < 0.45 * rate]
        noise = math.sqrt(whole.ambient.band_power(ship.f0 - 25.0, ship.f0 + 25.0, rate))
        begin = max(ship.closest_s - half * ship.scale_s, 0.0)
        end = min(ship.closest_s + half * ship.scale_s, settings.seconds)
        if lines and level * max(ship.amps) > noise and end > begin:
            low = lines[0] * (1 - ship.doppler)
            high = min(lines[-1] * (1 + ship.doppler), rate / 2)
            boxes.append(Selection(begin, end, low, high, SHIP_LABEL))
    return boxes


def _render_block(
    settings: RecordingSettings, plan: Plan, index: int, zi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    rate, block = settings.rate, round(BLOCK_SECONDS * settings.rate)
    start = index * block
    n = min(block, round(settings.seconds * rate) - start)
    x, zi = plan.ambient.render(_rng(settings, 2, index), n, rate, zi=zi)
    t = (start + np.arange(n)) / rate
    for ship, level in plan.ships:
        x += ship.render(t, rate) * level
    for event in plan.events:
        first = round(event.start_s * rate)
        if first < start + n and first + 20 * rate > start:  # no event lasts 20 s
            sound = render_event(settings, event, plan.ambient)[0]
            sounds.add_at(x, sound, first - start)
    return x, zi


def audio_format(out: Path) -> str:
    """The libsndfile format ``out``'s suffix names (16-bit PCM in each); UpcallError otherwise."""
    try:
        return FORMATS[out.suffix.lower()]
    except KeyError:
        raise UpcallError(
            f"{out}: unknown audio suffix {out.suffix!r}; use one of {', '.join(FORMATS)}"
        ) from None


def write_recording(out: str | os.PathLike, settings: RecordingSettings) -> list[Selection]:
    """Write the recording at ``out`` (WAV, FLAC or AIFF, by its suffix) and its truth at
    ``out``.selections.txt; return the truth.

    An up-call cut by the end of the recording is left out of the truth and of the audio.
    """
    settings.check()
    out = Path(out)
    fmt = audio_format(out)
    table = Path(f"{out}.selections.txt")
    if os.path.lexists(out) and not table.is_file():  # ours always have their truth beside them
        raise UpcallError(
            f"{out}: exists and is not a recording of upcall synth-recording (no {table.name} "
            "beside it); refusing to overwrite it"
        )
    whole = plan(settings)
    selections = truth(settings)
    kept = {round(s.begin_s * settings.rate) for s in selections if s.label == "upcall"}
    events = [
        e for e in whole.events if e.kind != "upcall" or round(e.start_s * settings.rate) in kept
    ]
    whole = Plan(events, whole.ships, whole.ambient)
    rate, ambient = settings.rate, whole.ambient
    total, block = round(settings.seconds * rate), round(BLOCK_SECONDS * rate)
    blocks = -(-total // block)
    scale = 10 ** (NOISE_DBFS / 20) / math.sqrt(ambient.band_power(0.0, rate / 2, rate))
    zi = np.zeros(len(ambient.gains))
    with atomic_path(out) as tmp, tmp.open("w+b") as raw:
        sink = _Sink(raw)
        try:
            with sf.SoundFile(
                sink, "w", samplerate=rate, channels=1, format=fmt, subtype="PCM_16"
            ) as f:
                for index in progress(range(blocks), desc="recording", unit="block"):
                    x, zi = _render_block(settings, whole, index, zi)
                    f.write(sounds.to_pcm16(x * scale))
        except (sf.LibsndfileError, AssertionError) as e:  # soundfile asserts on a short write
            if sink.error is None:
                raise
            raise sink.error from e
        raw.flush()
        # before the audio gets its name: a failure here leaves neither file
        write_table(table, selections)
    return selections


class _Sink:
    """The output file as libsndfile's virtual I/O, keeping the OS's error (a full disk): given
    a path, libsndfile reports every failure as "System error"."""

    def __init__(self, raw) -> None:
        self.raw, self.error = raw, None

    def _do(self, fn, *args, failed=-1):
        try:
            return fn(*args)
        except OSError as e:
            self.error = self.error or e
            return failed

    def write(self, data: bytes) -> int:
        return self._do(self.raw.write, data, failed=0)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._do(self.raw.seek, offset, whence)

    def tell(self) -> int:
        return self._do(self.raw.tell)

    def read(self, size: int = -1) -> bytes:
        return self._do(self.raw.read, size, failed=b"")


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs

    cliargs.add_out(
        parser,
        f"recording to write; its suffix chooses the format ({', '.join(FORMATS)}); "
        "OUT.wav alone, the old spelling, still works",
        metavar="OUT.wav",
        required=True,
        positional=True,
    )
    parser.add_argument("--minutes", type=float, required=True, help="length in minutes")
    cliargs.add_seed(parser, "seed of every event, ship and the noise (zero or positive)")
    parser.add_argument(
        "--difficulty",
        choices=list(sounds.DIFFICULTIES),
        default="hard",
        help="hard (default): calls as faint and varied as real ones; easy: every call clear",
    )
    parser.add_argument(
        "--rate",
        type=int,
        default=sounds.RATE,
        help="sample rate in Hz (default 2000, the Kaggle rate; 1000–192000)",
    )
    parser.add_argument(
        "--label-others",
        action="store_true",
        help="the truth table also boxes the other sounds an analyst would label: "
        f"{', '.join(sorted(set(OTHER_LABELS.values())))} and {SHIP_LABEL} (the up-calls' "
        "label is upcall)",
    )
    parser.add_argument(
        "--regime",
        choices=list(REGIMES),
        default="default",
        help="noise laid over the same recording: default none; shipping: a busy lane (an "
        "extra ship every 3 min on average, 10 dB louder, 3x the Doppler drift) and extra clicks "
        "every 2.5 s on average; calls, hard negatives and the rest stay the same",
    )


def run(args: argparse.Namespace) -> int:
    settings = RecordingSettings(
        minutes=args.minutes,
        seed=args.seed,
        rate=args.rate,
        difficulty=args.difficulty,
        label_others=args.label_others,
        regime=args.regime,
    )
    selections = write_recording(args.out, settings)
    calls = sum(s.label == "upcall" for s in selections)
    others = f" and {len(selections) - calls} other sounds" if settings.label_others else ""
    print(
        f"wrote {settings.minutes:g} min at {settings.rate} Hz to {args.out} with "
        f"{calls} up-calls{others} ({args.out}.selections.txt)"
    )
    return 0
