"""DIGITS 6's forms for image-classification datasets and models, as WTForms forms: its fields,
defaults, validators and messages, and the few choices upcall does not serve.

Facts followed (NVIDIA/DIGITS source):
- digits/dataset/forms.py, digits/dataset/images/forms.py,
  digits/dataset/images/classification/forms.py: dataset fields and defaults (encoding "png",
  resize_channels "3", 256×256 with DataRequired, resize_mode "squash", backend "lmdb", method
  "folder"; the text-file uploads and server paths required "iff" the method and the
  use-local-files / use-val checkboxes say so).
- digits/model/forms.py, digits/model/images/forms.py: model fields (train_epochs 30 with
  NumberRange(min=1); learning_rate 0.01 as a MultiFloatField: comma list, "[" / "]" stripped,
  digits/utils/forms.py; optional numbers as NumberRange + Optional; solver_type "SGD",
  lr_policy "step" with lr_step_size 33, lr_step_gamma 0.1, ...; method "standard",
  standard_networks "alexnet" required iff method is standard, custom_network iff custom).
- The REST API posts without a CSRF token (digits/webapp.py: WTF_CSRF_ENABLED = False): these are
  plain ``wtforms.Form``s.
- A WTForms 2.x BooleanField left out of a POST is False, even with default True
  (``textfile_use_val``); only "false" or an empty value count as false when present.
- Validation failures come back as HTTP 400 ``{"errors": {field: [messages]}}``
  (digits/dataset/images/classification/views.py, digits/model/images/classification/views.py),
  with WTForms 2.1's texts ("Not a valid choice", no final period).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    Field,
    FloatField,
    Form,
    IntegerField,
    SelectField,
    StringField,
)
from wtforms.validators import (
    AnyOf,
    DataRequired,
    NumberRange,
    Optional,
    StopValidation,
    ValidationError,
)

from upcall.data.resize import RESIZE_MODES
from upcall.job import solver
from upcall.network.zoo import NETWORKS

REQUIRED = "This field is required."
# DIGITS's resize_width/height have no upper bound (DataRequired only); 100000 × 100000 made the
# build allocate 74.5 GiB. 4096 is 16× AlexNet's 256 and 32× a spectrogram's 129 rows.
MAX_SIDE = 4096
# DIGITS's solver_type choices -> Caffe 1.0's `type:` string: "NESTEROV" -> "Nesterov", ...
SOLVER_TYPES = {t.upper(): t for t in solver.SOLVER_TYPES}
# DIGITS offers lenet, alexnet, googlenet; upcall knows alexnet, googlenet and whalenet by name.
STANDARD_NETWORKS = tuple(sorted(NETWORKS))
UPLOADS = ("textfile_train_images", "textfile_val_images", "textfile_labels_file")


class FormErrors(Exception):
    """Form validation failed: ``errors`` is DIGITS's ``{field: [messages]}`` (HTTP 400)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


class _Wtforms21Texts:
    """WTForms 3 ends some messages with a period that WTForms 2.1, which DIGITS runs, did not;
    clients match DIGITS's texts ("Not a valid choice")."""

    UNDOTTED = ("Not a valid choice.", "Not a valid integer value.", "Not a valid float value.")

    def gettext(self, text: str) -> str:
        return text[:-1] if text in self.UNDOTTED else text

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return singular if n == 1 else plural


class _DigitsForm(Form):
    class Meta:
        def get_translations(self, form):
            return _Wtforms21Texts()


# -- DIGITS's own field and validators (digits/utils/forms.py) ------------------------------
class MultiFloatField(Field):
    """DIGITS's MultiFloatField: "0.01,0.001" or "[0.01, 0.001]" → [0.01, 0.001]."""

    def process_formdata(self, valuelist: list[str]) -> None:
        if valuelist:
            try:
                self.data = learning_rates(valuelist[0])
            except ValueError:
                self.data = []
                raise ValueError(self.gettext("Not a valid float value.")) from None


def learning_rates(text: str) -> list[float]:
    """The MultiFloatField's parse (ValueError for a value that is no number)."""
    return [float(x) for x in text.strip().strip("[]").split(",") if x.strip()]


class RequiredIff:
    """DIGITS's ``validate_required_iff``: the field is required when every other field named
    has the value given, and not validated at all otherwise."""

    def __init__(self, message: str = REQUIRED, **conditions: object) -> None:
        self.message, self.conditions = message, conditions

    def __call__(self, form: Form, field: Field) -> None:
        if all(form[name].data == value for name, value in self.conditions.items()):
            if not field.data or (isinstance(field.data, str) and not field.data.strip()):
                raise StopValidation(self.message)
        else:
            field.errors[:] = []
            raise StopValidation()


class Refuse:
    """A DIGITS choice upcall does not serve: ``{value: why}``."""

    def __init__(self, why: Mapping[object, str]) -> None:
        self.why = why

    def __call__(self, form: Form, field: Field) -> None:
        if field.data in self.why:
            raise ValidationError(self.why[field.data])


def _positive_rates(form: Form, field: Field) -> None:
    """Every learning rate > 0 (DIGITS allows 0; upcall's solvers refuse it)."""
    if field.process_errors:
        return
    if not field.data:
        raise StopValidation(REQUIRED)
    if any(not (math.isfinite(r) and r > 0) for r in field.data):
        raise ValidationError("Number must be greater than 0.")


def _sent(form: Form, field: Field) -> None:
    """A number sent empty is missing (a number left out takes its default)."""
    if field.raw_data and not field.raw_data[0].strip():
        field.errors[:] = []
        raise StopValidation(REQUIRED)


def _number(kind: type[Field], default, minimum, *, optional: bool = True) -> Field:
    """An IntegerField / FloatField with NumberRange(min=minimum): DIGITS's optional numbers
    (empty: None) or, with ``optional=False``, one that must not be sent empty."""
    first = Optional() if optional else _sent
    return kind(default=default, validators=[first, NumberRange(min=minimum)])


def _select(choices, default: str, refused: Mapping[str, str] | None = None, **kw) -> Field:
    """DIGITS's SelectField; ``refused``: its choices upcall does not serve, with why."""
    validators = [Refuse(refused)] if refused else []
    return SelectField(choices=list(choices), default=default, validators=validators, **kw)


def _iff(kind: type[Field], **conditions: object) -> Field:
    return kind(validators=[RequiredIff(**conditions)])


LMDB_ONLY = "upcall writes LMDB only"
NETWORKS_SERVED = "upcall serves standard and custom networks only"


class DatasetForm(_DigitsForm):
    """digits/dataset/images/classification/forms.py, ``method=textfile`` and LMDB only:
    upcall builds datasets from "PATH LABEL" lists; without ``textfile_use_val`` (a left-out
    checkbox is false) a dataset has a train DB only, as in DIGITS."""

    # fmt: off
    dataset_name = StringField(validators=[DataRequired()])
    group_name = StringField(default="")
    method = _select(("folder", "textfile"), "folder",
                     {"folder": "upcall serves method=textfile only (lists of 'PATH LABEL')"})
    encoding = _select(("none", "png", "jpg"), "png",
                       {"jpg": "upcall writes 'png' or 'none' encoded datums"})
    resize_channels = _select(("1", "3"), "3",
                              {"3": "upcall's spectrogram datasets are grayscale: send 1"})
    resize_width = IntegerField(default=256, validators=[DataRequired(), NumberRange(1, MAX_SIDE)])
    resize_height = IntegerField(default=256, validators=[DataRequired(), NumberRange(1, MAX_SIDE)])
    resize_mode = _select(RESIZE_MODES, "squash")
    backend = _select(("lmdb", "hdf5", "tfrecords"), "lmdb",
                      {"hdf5": LMDB_ONLY, "tfrecords": LMDB_ONLY})
    compression = StringField(default="none")
    textfile_use_local_files = BooleanField()
    textfile_use_val = BooleanField(default=True)
    textfile_train_images = _iff(Field, textfile_use_local_files=False)  # uploads
    textfile_val_images = _iff(Field, textfile_use_local_files=False, textfile_use_val=True)
    textfile_labels_file = _iff(Field, textfile_use_local_files=False)
    textfile_local_train_images = _iff(StringField, textfile_use_local_files=True)  # server paths
    textfile_local_val_images = _iff(StringField, textfile_use_local_files=True,
                                     textfile_use_val=True)
    textfile_local_labels_file = _iff(StringField, textfile_use_local_files=True)
    textfile_train_folder = StringField(default="")
    textfile_val_folder = StringField(default="")
    textfile_shuffle = StringField(default="1")
    # fmt: on


class ModelForm(_DigitsForm):
    """digits/model/forms.py and digits/model/images/forms.py: standard and custom networks."""

    # fmt: off
    dataset = SelectField(choices=[], validators=[DataRequired()])  # choices: the view's datasets
    model_name = StringField(validators=[DataRequired()])
    group_name = StringField(default="")
    train_epochs = _number(IntegerField, 30, 1, optional=False)
    snapshot_interval = _number(FloatField, 1.0, 0)
    val_interval = _number(FloatField, 1.0, 0)
    random_seed = _number(IntegerField, None, 0)
    batch_size = _number(IntegerField, None, 1)
    batch_accumulation = _number(IntegerField, None, 1)
    solver_type = _select(SOLVER_TYPES, "SGD")
    rms_decay = _number(FloatField, 0.99, 0)
    learning_rate = MultiFloatField(default=[0.01], validators=[_positive_rates])
    lr_policy = _select(solver.LR_POLICIES, "step")
    lr_step_size = _number(FloatField, 33.0, 0)
    lr_step_gamma = _number(FloatField, 0.1, 0)
    lr_multistep_values = MultiFloatField(default=[50.0, 85.0])
    lr_multistep_gamma = _number(FloatField, 0.5, 0)
    lr_exp_gamma = _number(FloatField, 0.95, 0)
    lr_inv_gamma = _number(FloatField, 0.1, 0)
    lr_inv_power = _number(FloatField, 0.5, 0)
    lr_poly_power = _number(FloatField, 3.0, 0)
    lr_sigmoid_step = _number(FloatField, 50.0, 0)
    lr_sigmoid_gamma = _number(FloatField, 0.1, 0)
    method = _select(("standard", "previous", "pretrained", "custom"), "standard",
                     {"previous": NETWORKS_SERVED, "pretrained": NETWORKS_SERVED})
    framework = StringField(default="caffe", validators=[
        AnyOf(["caffe"], message="The framework you choose is not currently supported.")])
    standard_networks = SelectField(choices=list(STANDARD_NETWORKS), default="alexnet",
                                    validators=[RequiredIff(method="standard")])
    custom_network = StringField(default="", validators=[RequiredIff(method="custom")])
    select_gpu = StringField(default="next")
    use_mean = StringField(default="image")
    crop_size = StringField(default="")
    # fmt: on


def _text(value: object) -> str:
    """A default as the form text that posts it: 30 → "30", 1.0 → "1", [50.0, 85.0] → "50,85"."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(_text(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _defaults(form: type[Form]) -> dict[str, str]:
    """Each text field's default, and "" for an optional number (checkboxes: none)."""
    return {
        f.name: _text(f.default)
        for f in form()
        if not isinstance(f, BooleanField)
        and (f.default is not None or isinstance(f, IntegerField | FloatField))
    }


DATASET_DEFAULTS = _defaults(DatasetForm)
MODEL_DEFAULTS = _defaults(ModelForm)


def checkbox(form: Mapping[str, str], name: str) -> bool:
    """A WTForms BooleanField: absent → False; present → False only for "false" or ""."""
    value = form.get(name)
    return value is not None and value not in BooleanField.false_values


def with_defaults(form: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, str]:
    """The posted fields over DIGITS's defaults (a field sent empty keeps its empty value)."""
    return {**defaults, **{k: v for k, v in form.items() if k != "username"}}


def _validated(form: Form) -> Form:
    if not form.validate():
        raise FormErrors({name: list(messages) for name, messages in form.errors.items()})
    return form


def _formdata(form: Mapping[str, str]) -> MultiDict:
    return form if hasattr(form, "getlist") else MultiDict(form)


def check_dataset(form: Mapping[str, str], files: Mapping[str, object]) -> dict[str, str]:
    """The posted fields over DIGITS's defaults; FormErrors when DIGITS (or upcall) answers 400.
    ``files``: the uploads by field name (only their presence is checked here)."""
    data = MultiDict(_formdata(form))
    for name in UPLOADS:  # only an uploaded file counts (paths.py reads its text)
        data.setlist(name, [name] if name in files else [])
    _validated(DatasetForm(data))
    return with_defaults(form, DATASET_DEFAULTS)


def check_model(form: Mapping[str, str], dataset_ids: set[str]) -> dict:
    """The model form with defaults, and the parsed values the job needs; FormErrors as DIGITS.

    ``{"form": {field: text}, "epochs", "rates", "multistep", <each optional number>}``; a
    number sent empty is None.
    """
    model = ModelForm(_formdata(form))
    model.dataset.choices = sorted(dataset_ids)
    _validated(model)
    numbers = {
        f.name: f.data
        for f in model
        if isinstance(f, IntegerField | FloatField) and f.name != "train_epochs"
    }
    return {
        "form": with_defaults(form, MODEL_DEFAULTS),
        "epochs": model.train_epochs.data,
        "rates": model.learning_rate.data,
        "multistep": tuple(model.lr_multistep_values.data),
        **numbers,
    }
