"""Request files (``digits_jobs/*.toml``): one DIGITS form per file, as a person writes it.

Each top-level key is a DIGITS form field, exactly as ``curl -F`` sends it; the file's kind
follows from its fields (``dataset_name``: a dataset, ``model_name``: a model). Values:

- ``"@PATH"`` uploads the file (curl's ``-F field=@PATH``), ``"<PATH"`` sends its text as the value
  (curl's ``-F field=<PATH``); relative paths resolve against the current directory, as curl's do;
- ``true`` sends ``y`` (a checked box); ``false`` leaves the field out, which DIGITS reads as false;
- a list is DIGITS's comma list (``learning_rate = [0.001, 0.01]``: one job per value);
- a model's ``dataset`` may name the dataset instead of giving its id: it is looked up.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from upcall.digits.client import DATASET_ROUTE, MODEL_ROUTE, DigitsClient
from upcall.digits.fields import is_job_id
from upcall.errors import UpcallError


@dataclass(frozen=True)
class RequestFile:
    """A request file read: its route, name, fields and uploads."""

    path: Path
    kind: str  # "datasets" or "models"
    fields: dict[str, object]
    files: dict[str, tuple[str, bytes]]

    @property
    def route(self) -> str:
        return DATASET_ROUTE if self.kind == "datasets" else MODEL_ROUTE

    @property
    def name(self) -> str:
        return str(self.fields["dataset_name" if self.kind == "datasets" else "model_name"])


def read_request(path: Path) -> RequestFile:
    """Parse a request file (UpcallError naming the file and the problem)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UpcallError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:  # TOML is UTF-8 by its specification
        raise UpcallError(f"{path}: not UTF-8 text (byte {e.start}), as TOML must be") from None
    except tomllib.TOMLDecodeError as e:
        raise UpcallError(f"{path}: not a TOML request file: {e}") from None
    if "dataset_name" in raw:
        kind = "datasets"
    elif "model_name" in raw:
        kind = "models"
    else:
        raise UpcallError(f"{path}: needs dataset_name (a dataset) or model_name (a model)")
    fields: dict[str, object] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            raise UpcallError(f"{path}: {key}: a form field holds a value, not a table")
        if isinstance(value, str) and value[:1] in ("@", "<"):
            target = Path(value[1:]).expanduser()
            try:
                content = target.read_bytes()
            except OSError as e:
                raise UpcallError(
                    f"{path}: {key}: cannot read {target}: {e.strerror or e}"
                ) from None
            if value[0] == "@":
                files[key] = (target.name, content)
            else:
                try:
                    fields[key] = content.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise UpcallError(
                        f"{path}: {key}: {target} is not UTF-8 text (byte {e.start}); "
                        "send a binary file with @ instead of <"
                    ) from None
        else:
            fields[key] = value
    return RequestFile(path, kind, fields, files)


def submit(client: DigitsClient, request: RequestFile) -> list[dict]:
    """Send ``request``; returns the jobs DIGITS made (``{id, name, status}`` each).

    A model's ``dataset`` given by name is replaced by the id of the newest dataset so named.
    """
    fields = dict(request.fields)
    if request.kind == "models":
        dataset = str(fields.get("dataset", ""))
        if dataset and not is_job_id(dataset):
            found = client.find(dataset, "datasets")
            if not found:
                raise UpcallError(
                    f"{request.path}: dataset: DIGITS at {client.url} holds no dataset named "
                    f"{dataset!r}; submit its request file first"
                )
            fields["dataset"] = found[-1]["id"]
        return client.create_models(fields, request.files)
    return [client.create_dataset(fields, request.files)]
