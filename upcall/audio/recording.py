"""One long synthetic recording with up-calls at known times (``upcall synth-recording``).

Detection is tried on continuous audio, so this writes what a moored recorder would hear: the
signal model of :mod:`upcall.audio.sounds` laid out in time. Up-calls come in bouts (2–8 calls, 10–60 s
apart; bouts minutes apart), as right whales call; ships pass over minutes with slowly drifting
tonals; clicks, flow noise and hard negatives (down-sweeps, moans, humpback-like units…) arrive at
random. The truth goes to a Raven selection table beside the audio (OUT.selections.txt).
``--difficulty`` chooses the calls' model as for ``upcall synth``: with ``hard`` (the default) the
calls are as faint, echoing and varied as the clips' labelled calls; the clips' label noise (calls
the analyst missed) has no counterpart here, so the table lists every call in the audio.

The audio is made and written block by block (noise filters carry their state and ships have an
analytic phase, so blocks join without seams), so an hour needs little memory. Every random
choice derives from the seed; each event has its own stream, so a block can render any event
that reaches into it.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class RecordingSettings:
    minutes: float
    seed: int = 0
    rate: int = sounds.RATE  # Hz; sounds keep their frequencies whatever the rate
    difficulty: str = "hard"  # a name in sounds.DIFFICULTIES: how faint and varied calls are

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
    return Plan(events, ships, ambient)


def _order(event: Event) -> tuple[float, str]:
    return event.start_s, event.kind


def render_event(
    settings: RecordingSettings, event: Event, ambient: sounds.Ambient
) -> tuple[np.ndarray, float, float]:
    """The event's samples (relative to unit-RMS ambient noise) and its (low, high) Hz band."""
    rng, rate = _rng(settings, 1, event.stream), settings.rate
    noise_rms = math.sqrt(ambient.band_power(0.0, rate / 2, rate))
    difficulty = sounds.get_difficulty(settings.difficulty)
    if event.kind == "upcall":  # the truth box spans the echoes too, as an analyst's would
        sound, lo, hi, _ = sounds.received_call(rng, ambient, rate, difficulty)
        return sound, lo, hi
    if event.kind == "confounder":
        sound = sounds.confounder(rng, rate)
        snr = difficulty.call_snr_db(rng)
        return sound * sounds.call_gain(ambient, 50.0, 250.0, rate, snr), 0.0, rate / 2
    if event.kind == "transient":
        return sounds.transient(rng, rate, noise_rms), 0.0, rate / 2
    n = int(rng.uniform(2.0, 10.0) * rate)
    return sounds.flow(rng, n, rate, noise_rms) * sounds.envelope(rng, n), 0.0, 15.0


def truth(settings: RecordingSettings) -> list[Selection]:
    """The up-calls that lie wholly inside the recording, as Raven selections."""
    whole = plan(settings)
    selections = []
    for event in whole.events:
        if event.kind == "upcall":
            sound, lo, hi = render_event(settings, event, whole.ambient)
            first = round(event.start_s * settings.rate)  # where _render_block puts it
            begin, end = first / settings.rate, (first + len(sound)) / settings.rate
            if end <= settings.seconds:
                selections.append(Selection(begin, end, lo, hi, "upcall"))
    return selections


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
            sound, _, _ = render_event(settings, event, plan.ambient)
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
    kept = {round(s.begin_s * settings.rate) for s in selections}
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


def run(args: argparse.Namespace) -> int:
    settings = RecordingSettings(
        minutes=args.minutes, seed=args.seed, rate=args.rate, difficulty=args.difficulty
    )
    selections = write_recording(args.out, settings)
    print(
        f"wrote {settings.minutes:g} min at {settings.rate} Hz to {args.out} with "
        f"{len(selections)} up-calls ({args.out}.selections.txt)"
    )
    return 0
