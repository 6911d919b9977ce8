"""Our dataset and job folders as DIGITS's form fields (the requests of the digits engine).

A dataset folder (``upcall lmdb``) becomes the text-file dataset request: its lists (uploaded, or
named as server paths with ``textfile_use_local_files``), grayscale, the size it was built at
(256×256 squash, or native: the images' own size, so nothing is resized), LMDB, PNG. A job folder
(``upcall nets``) becomes a custom-network model request: its train_val net with DIGITS's rules
for custom nets (digits/model/tasks/caffe_train.py save_files_classification: stage rules
"train" / "val" / "deploy", a Softmax in the deploy stage, Data layers without source or
backend, the mean injected by DIGITS from ``use_mean``), and its solver settings, which upcall
already keeps in DIGITS's terms (:class:`upcall.job.solver.SolverSettings`).
"""

from __future__ import annotations

import re
from pathlib import Path

from upcall.data.dataset import DatasetManifest
from upcall.errors import UpcallError
from upcall.job.config import JobConfig
from upcall.job.spec import JobSpec, classifier_head
from upcall.network.phase import layer_included
from upcall.network.upgrade import read_net
from upcall.proto import caffe_pb2, to_text

TRAIN_STATE = caffe_pb2.NetState(phase=caffe_pb2.TRAIN)
TEST_STATE = caffe_pb2.NetState(phase=caffe_pb2.TEST)


def dataset_fields(
    dataset: Path, *, name: str, local: bool = False
) -> tuple[dict[str, object], dict[str, tuple[str, bytes]]]:
    """The fields (and uploads) that make ``dataset``'s lists a DIGITS dataset named ``name``.

    ``local``: name the lists as server paths (the server shares this file system) rather than
    upload them; either way the lists' image paths must be readable by the server.
    """
    info = DatasetManifest.require(dataset, hint="make it with `upcall lmdb`")
    lists = Path(info.lists_dir) if info.lists_dir else None
    if lists is None or not (lists / "train.txt").is_file():
        raise UpcallError(f"{dataset / info.FILE}: names no lists folder with train.txt")
    fields: dict[str, object] = {
        "dataset_name": name,
        "method": "textfile",
        "resize_channels": 1,  # grayscale
        # native: the images' own size, so DIGITS's resize leaves them as they are
        "resize_width": info.image.width,
        "resize_height": info.image.height,
        "resize_mode": "squash" if info.native else info.resize_mode,
        "encoding": "png",
        "backend": "lmdb",
        "compression": "none",
        "textfile_shuffle": 1,
        "textfile_use_val": (lists / "val.txt").is_file(),  # a missing checkbox is false
        "textfile_use_local_files": local,
    }
    files: dict[str, tuple[str, bytes]] = {}
    for field, file in (
        ("train_images", "train.txt"),
        ("val_images", "val.txt"),
        ("labels_file", "labels.txt"),
    ):
        path = lists / file
        if not path.is_file():
            continue
        if local:
            fields[f"textfile_local_{field}"] = str(path)
        else:
            files[f"textfile_{field}"] = (file, path.read_bytes())
    return fields, files


def model_fields(spec: JobSpec, *, name: str, dataset_id: str, gpu: int | None) -> dict:
    """The custom-network model request for the job ``spec``, on DIGITS dataset ``dataset_id``."""
    config = JobConfig.read(spec.job) or JobConfig(network=spec.network)
    s = config.solver or {}
    solver = spec.solver
    epochs = config.epochs or s.get("epochs")
    if not epochs:
        raise UpcallError(
            f"{spec.job / config.FILE}: records no epochs; remake it with upcall nets"
        )
    fields: dict[str, object] = {
        "dataset": dataset_id,
        "model_name": name,
        "method": "custom",
        "framework": "caffe",
        "custom_network": custom_network(spec),
        "train_epochs": int(epochs),
        # the rate as written (the solver's float32 would send 0.009999999776482582)
        "learning_rate": s.get("base_lr") or config.base_lr or float(f"{solver.base_lr:.7g}"),
        # batch_size left out: DIGITS then uses the custom net's own (train and val differ)
        "solver_type": s.get("solver_type", solver.type or "SGD"),
        "lr_policy": s.get("lr_policy", solver.lr_policy or "step"),
        "snapshot_interval": s.get("snapshot_epochs", 1.0),
        "val_interval": s.get("val_epochs", 1.0),
        "random_seed": spec.seed if solver.random_seed >= 0 or config.seed is not None else None,
        "use_mean": "image" if spec.train_data.transform_param.mean_file else "none",
        "select_gpu": "next" if gpu is None else gpu,
    }
    if s.get("iter_size", 1) > 1:
        fields["batch_accumulation"] = s["iter_size"]
    policy_fields = {
        "step_pct": "lr_step_size",
        "gamma": f"lr_{fields['lr_policy']}_gamma",
        "power": f"lr_{fields['lr_policy']}_power",
    }
    for key, form in policy_fields.items():
        if s.get(key) is not None:
            fields[form] = s[key]
    if fields["lr_policy"] == "multistep" and s.get("multistep_pct"):
        fields["lr_multistep_values"] = ",".join(f"{v:g}" for v in s["multistep_pct"])
    if fields["lr_policy"] == "sigmoid" and s.get("step_pct") is not None:
        fields["lr_sigmoid_step"] = fields.pop("lr_step_size")
    if s.get("solver_type") == "RMSPROP":
        fields["rms_decay"] = s.get("rms_decay", 0.99)
    return fields


def custom_network(spec: JobSpec) -> str:
    """The job's train_val net as a DIGITS custom network (prototxt text).

    Phase rules become DIGITS's stages (TRAIN only → "train", TEST only → "val"); loss layers
    leave the deploy stage; a Softmax named as in deploy.prototxt reads the classifier's scores
    in the deploy stage; Data layers keep batch size, crop and mirror but no source, backend or
    mean (DIGITS fills them from the dataset and ``use_mean``); the last InnerProduct's
    num_output stays filled in (DIGITS fills only an unset one).
    """
    head = classifier_head(spec.net)
    if head is None:
        raise UpcallError(f"{spec.job / spec.solver.net}: no SoftmaxWithLoss for DIGITS to train")
    net = caffe_pb2.NetParameter(name=spec.net.name)
    for layer in spec.net.layer:
        if layer.type == "Input":
            continue
        if layer.infogain_loss_param.source:  # a file in the job folder DIGITS never receives
            raise UpcallError(
                f"{spec.job / spec.solver.net}: layer {layer.name!r} reads its class weights "
                f"from {layer.infogain_loss_param.source}, which a DIGITS server cannot be sent; "
                "train this job with --engine torch or caffe"
            )
        if layer.type == "Python":  # its module is a file in the job folder, as above
            raise UpcallError(
                f"{spec.job / spec.solver.net}: layer {layer.name!r} is a Python layer "
                f"({layer.python_param.module}.py in the job folder), which a DIGITS server "
                "cannot be sent; train this job with --engine torch or caffe"
            )
        new = net.layer.add()
        new.CopyFrom(layer)
        train, test = layer_included(layer, TRAIN_STATE), layer_included(layer, TEST_STATE)
        del new.include[:], new.exclude[:]
        if train and not test:
            new.include.add().stage.append("train")
        elif test and not train:
            new.include.add().stage.append("val")
        elif not train:
            continue  # in neither phase: Caffe never builds it
        if layer.type.endswith("Loss"):
            new.exclude.add().stage.append("deploy")
        if layer.type == "Data":
            new.data_param.ClearField("source")
            new.data_param.ClearField("backend")
            new.transform_param.ClearField("mean_file")
            new.transform_param.ClearField("mean_value")
    softmax = net.layer.add(name=_deploy_softmax(spec), type="Softmax", bottom=[head.bottom[0]])
    softmax.top.append(softmax.name)
    softmax.include.add().stage.append("deploy")
    return to_text(net)


def _deploy_softmax(spec: JobSpec) -> str:
    """The name of deploy.prototxt's Softmax (DIGITS's "softmax" when there is no deploy)."""
    path = spec.job / "deploy.prototxt"
    if path.is_file():
        deploy = read_net(path)
        for layer in deploy.layer:
            if layer.type == "Softmax":
                return layer.name
    return "softmax"


_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{4}$")  # DIGITS's job ids: YYYYMMDD-HHMMSS-xxxx


def is_job_id(text: str) -> bool:
    return bool(_ID.match(text))
