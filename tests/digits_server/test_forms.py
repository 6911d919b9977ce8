"""DIGITS's dataset and model forms (WTForms): defaults, DIGITS's messages, required-iff rules."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from upcall.digits_server.forms import (
    DATASET_DEFAULTS,
    MODEL_DEFAULTS,
    FormErrors,
    check_dataset,
    check_model,
    checkbox,
)

UPLOADS = {"textfile_train_images": b"", "textfile_val_images": b"", "textfile_labels_file": b""}
DATASET = {"dataset_name": "d", "method": "textfile", "resize_channels": "1",
           "textfile_use_val": "y"}  # fmt: skip


def errors(check, *args) -> dict[str, list[str]]:
    with pytest.raises(FormErrors) as e:
        check(*args)
    return e.value.errors


def test_defaults_are_digits_texts():
    assert DATASET_DEFAULTS["resize_width"] == "256" and DATASET_DEFAULTS["encoding"] == "png"
    assert "dataset_name" not in DATASET_DEFAULTS  # required: no default
    assert (MODEL_DEFAULTS["learning_rate"], MODEL_DEFAULTS["lr_multistep_values"]) == (
        "0.01",
        "50,85",
    )
    assert (MODEL_DEFAULTS["lr_step_size"], MODEL_DEFAULTS["random_seed"]) == ("33", "")


def test_dataset_form_keeps_posted_fields_over_defaults():
    form = check_dataset(MultiDict({**DATASET, "username": "fred", "extra": "x"}), UPLOADS)
    assert form["resize_mode"] == "squash" and form["extra"] == "x" and "username" not in form


def test_dataset_uploads_or_server_paths_required_iff_local():
    # an upload sent as a text field is no upload
    text = {**DATASET, "textfile_train_images": "a.png 0"}
    del text["textfile_use_val"]
    assert errors(check_dataset, text, {"textfile_labels_file": b""}) == {
        "textfile_train_images": ["This field is required."],
    }  # without textfile_use_val: no validation list wanted (DIGITS's train-only dataset)
    local = {**DATASET, "textfile_use_local_files": "y", "textfile_local_train_images": " "}
    assert set(errors(check_dataset, local, UPLOADS)) == {
        "textfile_local_train_images", "textfile_local_val_images", "textfile_local_labels_file"
    }  # fmt: skip
    # WTForms's BooleanField: only "false" or "" are false when sent
    assert not checkbox({"x": "false"}, "x") and not checkbox({}, "x") and checkbox({"x": "n"}, "x")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("method", "folder", "upcall serves method=textfile only (lists of 'PATH LABEL')"),
        ("method", "zip", "Not a valid choice"),
        ("encoding", "jpg", "upcall writes 'png' or 'none' encoded datums"),
        ("resize_width", "100000", "Number must be between 1 and 4096."),
        ("resize_height", "", "This field is required."),
        ("resize_mode", "stretch", "Not a valid choice"),
        ("backend", "hdf5", "upcall writes LMDB only"),
        ("dataset_name", "  ", "This field is required."),
    ],
)
def test_dataset_refusals(field, value, message):
    assert errors(check_dataset, {**DATASET, field: value}, UPLOADS) == {field: [message]}


def test_model_form_parses_digits_values():
    parsed = check_model(
        {"dataset": "D", "model_name": "m", "learning_rate": "[0.01, 0.001]",
         "lr_multistep_values": "20,60", "batch_size": "", "random_seed": "3"},
        {"D"},
    )  # fmt: skip
    assert parsed["rates"] == [0.01, 0.001] and parsed["multistep"] == (20.0, 60.0)
    assert (parsed["epochs"], parsed["batch_size"], parsed["random_seed"]) == (30, None, 3)
    assert parsed["lr_step_size"] == 33.0 and isinstance(parsed["lr_step_size"], float)
    assert parsed["form"]["solver_type"] == "SGD" and parsed["form"]["train_epochs"] == "30"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"dataset": "nope"}, {"dataset": ["Not a valid choice"]}),
        ({"dataset": ""}, {"dataset": ["This field is required."]}),
        ({"train_epochs": "0"}, {"train_epochs": ["Number must be at least 1."]}),
        ({"train_epochs": ""}, {"train_epochs": ["This field is required."]}),
        ({"learning_rate": "0.01,0"}, {"learning_rate": ["Number must be greater than 0."]}),
        ({"learning_rate": "x"}, {"learning_rate": ["Not a valid float value"]}),
        ({"solver_type": "adam"}, {"solver_type": ["Not a valid choice"]}),
        ({"method": "pretrained"}, {"method": ["upcall serves standard and custom networks only"]}),
        ({"method": "custom"}, {"custom_network": ["This field is required."]}),
        ({"standard_networks": "lenet"}, {"standard_networks": ["Not a valid choice"]}),
        ({"lr_step_gamma": "-1"}, {"lr_step_gamma": ["Number must be at least 0."]}),
        ({"batch_size": "x"}, {"batch_size": ["Not a valid integer value",
                                              "Number must be at least 1."]}),
    ],
)  # fmt: skip
def test_model_refusals(extra, expected):
    assert errors(check_model, {"dataset": "D", "model_name": "m", **extra}, {"D"}) == expected


def test_a_custom_network_ignores_the_standard_choice():
    form = {"dataset": "D", "model_name": "m", "method": "custom", "custom_network": "x",
            "standard_networks": "lenet"}  # fmt: skip
    assert check_model(form, {"D"})["form"]["custom_network"] == "x"
