"""The JSON file contract base: round trips, nested files, versions, one-line errors."""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from upcall.errors import UpcallError
from upcall.jsonfile import INLINE, JsonFile


@dataclass(frozen=True)
class Inner(JsonFile):
    FILE = "inner.json"
    mode: str
    size: tuple[int, int] = (1, 2)


@dataclass(frozen=True)
class Outer(JsonFile):
    FILE = "outer.json"
    FORMAT = 2
    name: str
    inner: Inner | None = None
    counts: dict = field(default_factory=dict)


def test_round_trip_with_nested_file_and_tuple(tmp_path):
    value = Outer("x", Inner("tutorial", (129, 30)), {"train": {"whale": 3}})
    path = value.write(tmp_path)
    assert path == tmp_path / "outer.json"
    on_disk = json.loads(path.read_text())
    assert on_disk["format"] == 2 and on_disk["inner"] == {"format": 1, "mode": "tutorial", "size": [129, 30]}
    assert Outer.read(tmp_path) == value


def test_missing_file_is_none_or_error_naming_it(tmp_path):
    assert Outer.read(tmp_path) is None
    with pytest.raises(UpcallError, match=r"outer\.json: not found; run upcall x"):
        Outer.require(tmp_path, "run upcall x")


def test_unversioned_file_reads_as_format_1(tmp_path):
    (tmp_path / "inner.json").write_text('{"mode": "enhanced"}')
    assert Inner.read(tmp_path) == Inner("enhanced")


@pytest.mark.parametrize("fmt", [3, 0, "2"])
def test_newer_or_unknown_format_is_one_line_error(tmp_path, fmt):
    (tmp_path / "outer.json").write_text(json.dumps({"format": fmt, "name": "x"}))
    with pytest.raises(UpcallError) as e:
        Outer.read(tmp_path)
    assert str(tmp_path / "outer.json") in str(e.value) and "\n" not in str(e.value)


def test_missing_required_field_names_file_and_field(tmp_path):
    (tmp_path / "outer.json").write_text('{"format": 2}')
    with pytest.raises(UpcallError, match=r"outer\.json: missing field 'name'"):
        Outer.read(tmp_path)


@dataclass(frozen=True)
class Shape:
    height: int
    width: int = 1


@dataclass(frozen=True)
class Flat(JsonFile):
    FILE = "flat.json"
    mode: str
    extra: dict = field(default_factory=dict, metadata=INLINE)  # every key no field names
    shape: Shape | None = None
    where: Shape = field(default_factory=lambda: Shape(0), metadata=INLINE)  # height, width


def test_inline_fields_sit_at_the_top_level_and_plain_dataclasses_nest(tmp_path):
    value = Flat("enhanced", {"range_db": [-5.0, 25.0]}, Shape(129, 30), Shape(3, 4))
    path = value.write(tmp_path)
    on_disk = json.loads(path.read_text())
    assert list(on_disk) == ["format", "mode", "range_db", "shape", "height", "width"]
    assert on_disk["shape"] == {"height": 129, "width": 30}  # no format: not a file of its own
    assert Flat.read(tmp_path) == value
    assert Flat.from_json({"mode": "tutorial", "fs": 2.0}) == Flat("tutorial", {"fs": 2.0})


# --- every contract: round trips, typed fields -------------------------------------------------

OWNERS = [  # the modules of ARCHITECTURE.md's "File contracts" table
    "upcall.audio.synth",
    "upcall.data.render",
    "upcall.data.lists",
    "upcall.data.augment",
    "upcall.data.dataset",
    "upcall.job.config",
    "upcall.job.records",
    "upcall.workflows.demo",
    "upcall.workflows.recipe",
    "upcall.workflows.search_study",
    "upcall.engines.digits.record",
    "upcall.inference.onnx.metadata",
    "upcall.digits_server.jobs",
    "upcall.detect.run",
    "upcall.detect.made",
    "upcall.detect.evaluate",
    "upcall.survey.presence",
    "upcall.audio.clipplan",
    "upcall.workflows.verified",
]


def _contracts() -> set[type]:
    for name in OWNERS:
        importlib.import_module(name)
    found, todo = set(), [JsonFile]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("upcall."):
                found.add(sub)
            todo.append(sub)
    return found


def _samples() -> list[JsonFile]:
    """One object of each contract, with values of the kinds its writer gives them."""
    from upcall.audio.clipplan import ClipSettings
    from upcall.audio.synth import SynthSettings
    from upcall.augment.clips import AugmentSettings
    from upcall.data.augment import AugmentRecord
    from upcall.data.dataset import DatasetManifest, DatasetSettings, ImageShape
    from upcall.data.listsfolder import ListsManifest
    from upcall.data.pngroot import ReadOptions, SpectrogramSettings
    from upcall.detect.evaluate import Evaluation
    from upcall.detect.made import Made, RecordingStamp
    from upcall.detect.run import DetectSettings
    from upcall.digits_server.jobs import JobRecord
    from upcall.engines.digits.record import DigitsRecord
    from upcall.inference.onnx.metadata import DeployInfo
    from upcall.job.config import JobConfig
    from upcall.job.records import Best, Summary, TestRecord, TrainRecord, WallTimes
    from upcall.network.classweights import ClassWeights
    from upcall.survey.presence import Presence
    from upcall.workflows.demo import DemoSettings
    from upcall.workflows.recipe import DEFAULT_RECIPE
    from upcall.workflows.search_study import SearchSettings
    from upcall.workflows.verified import VerifiedRecord

    spectrograms = SpectrogramSettings.for_mode(
        "enhanced", data_dir=Path("/data"), read=ReadOptions(resample=True)
    )
    counts = {"train": {"noise": 20, "whale": 4}, "val": {"noise": 5, "whale": 1}}
    lists = ListsManifest(
        data_dir="/data", spectrogram_root="/data", spectrograms=spectrograms, split="random",
        val_fraction=0.2, balance="none", seed=0, counts=counts, test_images=3,
        files={"train.txt": "ab" * 32}, augmented=AugmentSettings(copies=2, snr_db=None),
        augmented_from="/lists", labels_digest="cd" * 32, clips_digest="ef" * 32,
    )
    test = TestRecord(
        iter=50, epoch=1.0, val_loss=0.3, val_accuracy=0.9, val_auc=0.95,
        recall={"noise": 0.97, "whale": None}, clips=6, caffe_logged={"accuracy": 0.9},
    )
    best = Best(0.9, 0.95, 0.3)
    return [
        SynthSettings(n_train=30, seed=2),
        spectrograms,
        lists,
        AugmentRecord("/lists", AugmentSettings()),
        DatasetManifest(
            image=ImageShape(129, 30), size="native", resize_mode="none", counts=counts,
            labels=("noise", "whale"), spectrograms=spectrograms, lists=lists,
            lists_dir="/lists", settings=DatasetSettings(size=None, workers=1), build_id="x1",
        ),
        JobConfig(
            network="whalenet", network_source={"registry": "whalenet", "options": {}},
            base_lr=0.01, epochs=2, batch_size=64, val_batch_size=100, dataset="/ds",
            dataset_info={"size": "native"}, dataset_fingerprint="x1", solver={"base_lr": 0.01},
            schedule={"iterations_per_epoch": 25}, seed=0, deploy_input=(1, 1, 129, 30),
            multiply_adds_per_image=123456, parameters=789,
            class_weights=ClassWeights("manual", (1.0, 2.5)), augment={"time_shift": 0.1},
            upcall_version="0.1.0",
        ),
        TrainRecord(iter=10, epoch=0.2, lr=0.01, loss=0.5),
        TrainRecord(iter=11, epoch=0.22, lr=0.01, loss=None),
        test,
        TestRecord(iter=0, epoch=0.0, val_loss=None, val_accuracy=None, caffe_logged={"loss": 0.7}),
        best,
        Summary(
            engine="torch", network="whalenet", iterations=100, epochs=2.0, wall_seconds=3.5,
            train_images_per_second=120.5, device="cpu", threads=2, resumed_from=50,
            snapshots=("snapshot_iter_50.caffemodel", "snapshot_iter_100.caffemodel"),
            final=test, best=best,
        ),
        WallTimes({"50": 1.5, "100": 3.5}),
        DemoSettings(),
        DEFAULT_RECIPE,
        SearchSettings(
            data="/data", dataset="/out/dataset", study="s", storage=None, trials=4, seed=0,
            networks=("whalenet", "lenet"), lr_range=(0.001, 0.1), batch_sizes=(32, 64),
            solver_types=("SGD",), lr_policies=("poly", "step"), epochs=(1, 3), pruning=True,
            engine="torch", class_weights=("none", "balanced"), augment=("none",),
        ),
        DigitsRecord(url="http://localhost:5000", model_name="job 1a2b3c4d", model_id="m1",
                     status="Done", outputs={"accuracy (val) last": 0.9}),
        DeployInfo(
            input_name="data", input_shape=[1, 129, 30], output_name="prob", is_prob=True,
            class_names=["noise", "whale"], crop_size=0, scale=1.0,
            mean={"shape": [1, 1, 1], "values": [0.5]}, input={"height": 129, "width": 30},
            spectrograms=spectrograms.to_json(), source={"job": "/job", "iteration": 100},
        ),
        JobRecord(
            id="20260101-000000-abcd", kind="model", name="m", username="u",
            history=(("Initialized", 1.0), ("Running", 2.0), ("Done", 3.5)),
            form={"learning_rate": "0.01"}, dataset_id="20260101-000000-0123", engine="torch",
        ),
        DetectSettings(model="/job", weights="/job/snapshot_iter_100.caffemodel",
                       threshold=0.5, step_s=0.5, channel=0, smoothing=3, model_sha256="ab"),
        Made("ab" * 32, RecordingStamp(1000, 1700000000123456789, "cd" * 32), True,
             "2024-03-01T00:10:00.000+02:00", "file name (YYYYMMDD_HHMMSS)", 3600.0),
        Evaluation(
            tolerance_s=1.0, threshold=0.5, truth=10, detections=12, precision=0.75,
            recall=0.9, f1=0.82, average_precision=0.8, best_f1=0.85, best_f1_threshold=0.4,
            target_precision=0.9, threshold_at_precision=None, recall_at_precision=None,
            match="overlap", min_overlap=0.3, hours=4.0, hours_source="recordings.csv",
            fp_per_hour=0.5, target_fp_per_hour=1.0, recall_at_fp_per_hour=0.8,
            threshold_at_fp_per_hour=0.4, hourly_bins="UTC clock hours", truth_hours=3,
            detected_hours=2, hourly_precision=1.0, hourly_recall=0.5, target_recall=0.9,
            fp_per_hour_at_recall=2.5, positive=("upcall",),
        ),
        VerifiedRecord(
            data="/data", verified="/verified", recordings=("/archive",),
            init_weights="/runs/a/jobs/w/snapshot_iter_9.caffemodel", init_weights_sha256="ab" * 32,
        ),
        ClipSettings(
            label_column="Tags", positive=("upcall", "NARW"), negatives_per_positive=2.0,
            guard_s=2.0, placements=3, channel=1, unannotated_negatives=True, seed=4,
            start_times=Path("/data/starts.csv"), hard_negative_share=0.5,
        ),
        Presence(
            source="detect folder /det", effort_known=True, threshold=0.5, labels=("upcall",),
            bin="hour", first_day="2024-03-01", last_day="2024-03-02", detections=4,
            recorded_hours=2.5, hours_with_effort=4, hours_with_presence=3, days_with_effort=2,
            days_with_presence=2, unplaced_detections=1, unplaced_recordings=("c.wav",),
            unplaced_hours=0.25,
        ),
    ]


def test_every_contract_has_a_sample_and_round_trips(tmp_path):
    samples = _samples()
    assert _contracts() == {type(s) for s in samples}
    for n, sample in enumerate(samples):
        path = sample.write(tmp_path / f"{n}.json")
        again = type(sample).read(path)
        assert again == sample and again.to_json() == json.loads(path.read_text())
        # as a file of format 1 written before the key existed
        old = {k: v for k, v in sample.to_json().items() if k != "format"}
        assert type(sample).from_json(old) == sample


def test_older_records_without_optional_fields_read():
    from upcall.job.records import TestRecord

    old = {"kind": "test", "iter": 5, "epoch": 1, "val_loss": 0.3, "val_accuracy": 1}
    record = TestRecord.from_json(old)
    assert (record.clips, record.recall, record.caffe_logged, record.val_auc) == (None,) * 4
    # whole numbers are valid floats, read as floats; ints stay ints
    assert type(record.epoch) is float and type(record.val_accuracy) is float
    assert type(record.iter) is int


def _error(cls_name: str, value: dict) -> str:
    cls = {type(s).__name__: type(s) for s in _samples()}[cls_name]
    with pytest.raises(UpcallError) as e:
        cls.from_json(value, source="FILE")
    assert "\n" not in str(e.value)
    return str(e.value)


def _sample(cls_name: str) -> dict:
    return next(s for s in _samples() if type(s).__name__ == cls_name).to_json()


@pytest.mark.parametrize(
    "cls_name, key, bad, message",
    [
        # int
        ("TrainRecord", "iter", "ten", "iter: expected int, got str"),
        ("TrainRecord", "iter", 10.0, "iter: expected int, got float"),
        ("TrainRecord", "iter", True, "iter: expected int, got bool"),
        ("SynthSettings", "n_train", "30", "n_train: expected int, got str"),
        # float
        ("TrainRecord", "lr", "0.01", "lr: expected float, got str"),
        ("Evaluation", "threshold", None, "threshold: expected float, got null"),
        # str
        ("Summary", "engine", 5, "engine: expected str, got int"),
        ("ListsManifest", "data_dir", ["/data"], "data_dir: expected str, got array"),
        # bool
        ("Made", "scores", "yes", "scores: expected bool, got str"),
        ("SearchSettings", "pruning", 1, "pruning: expected bool, got int"),
        # list / tuple
        ("Summary", "snapshots", ["a", 3], r"snapshots\[1\]: expected str, got int"),
        ("Summary", "snapshots", "a", "snapshots: expected array, got str"),
        ("JobRecord", "history", [["Done", "x"]], r"history\[0\]\[1\]: expected float, got str"),
        ("SearchSettings", "lr_range", [0.1], "lr_range: expected array of length 2, got 1"),
        ("DeployInfo", "input_shape", [1, "x"], r"input_shape\[1\]: expected int, got str"),
        ("JobConfig", "deploy_input", [1, 1.5], r"deploy_input\[1\]: expected int, got float"),
        # dict
        ("TestRecord", "recall", {"whale": "x"}, "recall.whale: expected float | null, got str"),
        ("WallTimes", "seconds", {"50": "1.5"}, "seconds.50: expected float, got str"),
        ("JobRecord", "form", {"a": 1}, "form.a: expected str, got int"),
        ("DatasetManifest", "counts", {"train": {"whale": "3"}},
         "counts.train.whale: expected int, got str"),
        ("JobConfig", "solver", [], "solver: expected object, got array"),
        # nested dataclass and nested file
        ("DatasetManifest", "image", {"height": "x", "width": 3}, "image.height: expected int"),
        ("DatasetManifest", "image", "129x30", "image: expected object, got str"),
        ("Made", "recording", {"size": 1}, "recording: missing field 'mtime_ns'"),
        ("JobConfig", "class_weights", {"weights": ["a"]},
         r"class_weights.weights\[0\]: expected float, got str"),
        ("Summary", "final", {"kind": "test", "iter": "x"}, "final.iter: expected int"),
        ("AugmentRecord", "settings", {"copies": 1.5}, "settings.copies: expected int, got float"),
        ("DatasetManifest", "lists", {"format": 9}, "lists: lists.json format 9 is not one"),
        # optional
        ("TestRecord", "clips", "6", "clips: expected int | null, got str"),
        ("DatasetManifest", "settings", "x", "settings: expected object | null, got str"),
        ("DetectSettings", "model_sha256", None, "model_sha256: expected str, got null"),
        # inline fields: a dataclass's keys at the top level
        ("Recipe", "base_lr", "0.01", "base_lr: expected float, got str"),
        ("SpectrogramSettings", "resample", "yes", "resample: expected bool, got str"),
    ],
)
def test_a_wrong_type_is_one_line_naming_the_file_and_field(cls_name, key, bad, message):
    value = _sample(cls_name)
    if key in ("lists",):  # a nested file: keep its other keys
        bad = {**value[key], **bad}
    assert re.match(f"FILE: {message}", _error(cls_name, {**value, key: bad}))


def test_nested_fields_are_named_by_their_path():
    value = _sample("DatasetManifest")
    value["lists"]["spectrograms"]["nfft"] = "256"
    assert _error("DatasetManifest", value) == (
        "FILE: lists.spectrograms.nfft: expected int, got str"
    )


def test_a_train_record_with_a_text_iteration_fails():
    from upcall.job.records import TrainRecord

    with pytest.raises(UpcallError, match=r"^iter: expected int, got str$"):
        TrainRecord.from_json({"iter": "ten"})


def test_a_metrics_line_of_the_wrong_type_names_the_file_and_line(tmp_path):
    from upcall.job.records import read_metrics

    lines = [{"kind": "train", "iter": i, "epoch": i / 10, "lr": 0.01, "loss": 0.5} for i in (1, 2)]
    lines.append({"kind": "train", "iter": "ten", "epoch": 0.3, "lr": 0.01, "loss": 0.5})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(v) + "\n" for v in lines))
    with pytest.raises(UpcallError) as e:
        read_metrics(tmp_path)
    assert str(e.value) == f"{tmp_path / 'metrics.jsonl'}:3: iter: expected int, got str"


@dataclass(frozen=True)
class WithPath(JsonFile):
    where: Path
    maybe: Path | None = None


def test_paths_are_strings_in_the_file():
    value = WithPath(Path("/a/b"), Path("c"))
    assert value.to_json() == {"format": 1, "where": "/a/b", "maybe": "c"}
    assert WithPath.from_json(value.to_json()) == value
    with pytest.raises(UpcallError, match=r"^maybe: expected str \(a path\), got int$"):
        WithPath.from_json({"where": "/a", "maybe": 3})
