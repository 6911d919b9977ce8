"""DIGITS 6's form fields for image-classification datasets and models, with its defaults and
its validation messages (no WTForms: a table of fields and a few rules).

Facts followed (NVIDIA/DIGITS source):
- digits/dataset/forms.py, digits/dataset/images/forms.py,
  digits/dataset/images/classification/forms.py: dataset fields and defaults (encoding "png",
  resize_channels "3", 256×256, resize_mode "squash", backend "lmdb", method "folder").
- digits/model/forms.py, digits/model/images/forms.py: model fields (train_epochs 30 ≥ 1,
  learning_rate 0.01 as a MultiFloatField: comma list, "[" / "]" stripped, digits/utils/forms.py;
  solver_type "SGD", lr_policy "step" with lr_step_size 33, lr_step_gamma 0.1, ...; method
  "standard", standard_networks "alexnet").
- A WTForms 2.x BooleanField left out of a POST is False, even with default True
  (``textfile_use_val``); only "false" or an empty value count as false when present.
- Validation failures come back as HTTP 400 ``{"errors": {field: [messages]}}``
  (digits/dataset/images/classification/views.py, digits/model/images/classification/views.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from upcall.model.networks import NETWORKS

REQUIRED = "This field is required."
CHOICE = "Not a valid choice"

RESIZE_MODES = ("crop", "squash", "fill", "half_crop")
# DIGITS sets no upper bound on resize_width/height (DataRequired only); 100000 × 100000 made the
# build allocate 74.5 GiB. 4096 is 16× AlexNet's 256 and 32× a spectrogram's 129 rows.
MAX_SIDE = 4096
ENCODINGS = ("none", "png", "jpg")
# DIGITS's solver_type choices -> Caffe 1.0's `type:` string (upcall.model.solver.SOLVER_TYPES)
SOLVER_TYPES = {
    "SGD": "SGD",
    "NESTEROV": "Nesterov",
    "ADAGRAD": "AdaGrad",
    "RMSPROP": "RMSProp",
    "ADADELTA": "AdaDelta",
    "ADAM": "Adam",
}
LR_POLICIES = ("fixed", "step", "multistep", "exp", "inv", "poly", "sigmoid")
# DIGITS offers lenet, alexnet, googlenet; upcall knows alexnet, googlenet and whalenet by name.
STANDARD_NETWORKS = tuple(sorted(NETWORKS))

DATASET_DEFAULTS = {
    "group_name": "",
    "encoding": "png",
    "resize_channels": "3",
    "resize_width": "256",
    "resize_height": "256",
    "resize_mode": "squash",
    "backend": "lmdb",
    "compression": "none",
    "method": "folder",
    "textfile_train_folder": "",
    "textfile_val_folder": "",
    "textfile_shuffle": "1",
}
MODEL_DEFAULTS = {
    "group_name": "",
    "train_epochs": "30",
    "snapshot_interval": "1",
    "val_interval": "1",
    "random_seed": "",
    "batch_size": "",
    "batch_accumulation": "",
    "solver_type": "SGD",
    "rms_decay": "0.99",
    "learning_rate": "0.01",
    "lr_policy": "step",
    "lr_step_size": "33",
    "lr_step_gamma": "0.1",
    "lr_multistep_values": "50,85",
    "lr_multistep_gamma": "0.5",
    "lr_exp_gamma": "0.95",
    "lr_inv_gamma": "0.1",
    "lr_inv_power": "0.5",
    "lr_poly_power": "3",
    "lr_sigmoid_step": "50",
    "lr_sigmoid_gamma": "0.1",
    "method": "standard",
    "framework": "caffe",
    "standard_networks": "alexnet",
    "custom_network": "",
    "select_gpu": "next",
    "use_mean": "image",
    "crop_size": "",
}


class FormErrors(Exception):
    """Form validation failed: ``errors`` is DIGITS's ``{field: [messages]}`` (HTTP 400)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def checkbox(form: Mapping[str, str], name: str) -> bool:
    """A WTForms 2.x BooleanField: absent → False; present → False only for "false" or ""."""
    value = form.get(name)
    return value is not None and value.strip().lower() not in ("false", "")


def with_defaults(form: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, str]:
    """The posted fields over DIGITS's defaults (a field sent empty keeps its empty value)."""
    return {**defaults, **{k: v for k, v in form.items() if k != "username"}}


class _Checker:
    """Collects DIGITS-style messages per field."""

    def __init__(self, form: Mapping[str, str]) -> None:
        self.form, self.errors = form, {}

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def required(self, name: str) -> str | None:
        value = (self.form.get(name) or "").strip()
        if not value:
            self.fail(name, REQUIRED)
            return None
        return value

    def choice(self, name: str, choices) -> str | None:
        value = self.form.get(name, "")
        if value not in choices:
            self.fail(name, CHOICE)
            return None
        return value

    def number(self, name: str, kind=float, *, minimum=None, maximum=None, optional=False):
        text = (self.form.get(name) or "").strip()
        if not text:
            if not optional:
                self.fail(name, REQUIRED)
            return None
        try:
            value = kind(text)
        except ValueError:
            self.fail(name, f"Not a valid {'integer' if kind is int else 'float'} value")
            return None
        if maximum is not None and not minimum <= value <= maximum:  # WTForms NumberRange's text
            self.fail(name, f"Number must be between {minimum} and {maximum}.")
            return None
        if minimum is not None and value < minimum:
            self.fail(name, f"Number must be at least {minimum}.")
            return None
        return value

    def raise_if_any(self) -> None:
        if self.errors:
            raise FormErrors(self.errors)


def check_dataset(form: Mapping[str, str], files: Mapping[str, object]) -> dict[str, str]:
    """The dataset form with defaults; FormErrors when DIGITS would answer 400.

    Only ``method=textfile`` is served (upcall builds datasets from "PATH LABEL" lists), only
    the LMDB backend, and a validation list is required (upcall's datasets always have val_db).
    """
    f = with_defaults(form, DATASET_DEFAULTS)
    c = _Checker(f)
    c.required("dataset_name")
    if c.choice("method", ("folder", "textfile")) == "folder":
        c.fail("method", "upcall serves method=textfile only (lists of 'PATH LABEL')")
    c.choice("encoding", ENCODINGS)
    if f.get("encoding") == "jpg":
        c.fail("encoding", "upcall writes 'png' or 'none' encoded datums")
    c.choice("resize_channels", ("1", "3"))
    if f.get("resize_channels") == "3":
        c.fail("resize_channels", "upcall's spectrogram datasets are grayscale: send 1")
    c.number("resize_width", int, minimum=1, maximum=MAX_SIDE)
    c.number("resize_height", int, minimum=1, maximum=MAX_SIDE)
    c.choice("resize_mode", RESIZE_MODES)
    if c.choice("backend", ("lmdb", "hdf5", "tfrecords")) not in (None, "lmdb"):
        c.fail("backend", "upcall writes LMDB only")
    local = checkbox(f, "textfile_use_local_files")
    for part in ("train_images", "labels_file") + (
        ("val_images",) if checkbox(f, "textfile_use_val") else ()
    ):
        if local:
            c.required(f"textfile_local_{part}")
        elif f"textfile_{part}" not in files:
            c.fail(f"textfile_{part}", REQUIRED)
    if not checkbox(f, "textfile_use_val"):
        c.fail("textfile_use_val", "upcall's datasets need a validation list: send it with y")
    c.raise_if_any()
    return f


def learning_rates(text: str) -> list[float]:
    """DIGITS's MultiFloatField: "0.01,0.001" or "[0.01, 0.001]" → [0.01, 0.001]."""
    return [float(x) for x in text.strip().strip("[]").split(",") if x.strip()]


def check_model(form: Mapping[str, str], dataset_ids: set[str]) -> dict:
    """The model form with defaults, and the parsed values the job needs; FormErrors as DIGITS."""
    f = with_defaults(form, MODEL_DEFAULTS)
    c = _Checker(f)
    if c.required("dataset") and f["dataset"] not in dataset_ids:
        c.fail("dataset", CHOICE)
    c.required("model_name")
    epochs = c.number("train_epochs", int, minimum=1)
    try:
        rates = learning_rates(f["learning_rate"])
        if not rates:
            c.fail("learning_rate", REQUIRED)
        elif any(not (math.isfinite(r) and r > 0) for r in rates):
            c.fail("learning_rate", "Number must be greater than 0.")
    except ValueError:
        c.fail("learning_rate", "Not a valid float value")
        rates = []
    c.choice("solver_type", tuple(SOLVER_TYPES))
    c.choice("lr_policy", LR_POLICIES)
    c.choice("framework", ("caffe",))
    method = c.choice("method", ("standard", "custom", "previous", "pretrained"))
    if method == "standard":
        c.choice("standard_networks", STANDARD_NETWORKS)
    elif method == "custom":
        c.required("custom_network")
    elif method is not None:
        c.fail("method", "upcall serves standard and custom networks only")
    numbers = {
        name: c.number(name, kind, minimum=minimum, optional=True)
        for name, kind, minimum in (
            ("batch_size", int, 1),
            ("batch_accumulation", int, 1),
            ("random_seed", int, 0),
            ("snapshot_interval", float, 0),
            ("val_interval", float, 0),
            ("rms_decay", float, 0),
            ("lr_step_size", float, 0),
            ("lr_step_gamma", float, 0),
            ("lr_multistep_gamma", float, 0),
            ("lr_exp_gamma", float, 0),
            ("lr_inv_gamma", float, 0),
            ("lr_inv_power", float, 0),
            ("lr_poly_power", float, 0),
            ("lr_sigmoid_step", float, 0),
            ("lr_sigmoid_gamma", float, 0),
        )
    }
    try:
        multistep = tuple(float(x) for x in f["lr_multistep_values"].split(",") if x.strip())
    except ValueError:
        c.fail("lr_multistep_values", "Not a valid float value")
        multistep = ()
    c.raise_if_any()
    return {"form": f, "epochs": epochs, "rates": rates, "multistep": multistep, **numbers}
