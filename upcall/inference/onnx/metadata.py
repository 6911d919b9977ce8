"""What an exported model carries beside its weights: one :class:`DeployInfo` (torch-free).

The same dataclass is the ``metadata_props`` of an exported ONNX model (one key per field, each
value JSON) and ``export.json`` in an exported Caffe folder, so a deployment needs no job folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from upcall.errors import UpcallError
from upcall.job.deploy import Preprocess
from upcall.jsonfile import JsonFile


@dataclass(frozen=True)
class DeployInfo(JsonFile):
    """A job's deploy net described for a deployment (ARCHITECTURE.md §7)."""

    FILE: ClassVar[str] = "export.json"

    input_name: str  # the graph / deploy net input blob
    input_shape: list[int]  # (C, h, w) the network takes, after the crop
    output_name: str  # the blob read back (the Softmax's top)
    is_prob: bool  # the output is probabilities already
    class_names: list[str]
    crop_size: int  # Caffe's centre crop of the stored image; 0: none
    scale: float
    # {"shape": [C, H, W] or [C, 1, 1], "values": flat float32 values}, or None: no mean
    mean: dict[str, Any] | None
    # upcall.inference.inputs.InputSpec as JSON: how a clip or PNG becomes the stored image
    input: dict[str, Any]
    spectrograms: dict[str, Any] | None  # the dataset's spectrograms.json (SpectrogramSettings)
    source: dict[str, Any]  # the job, network and snapshot iteration it came from

    def preprocess(self) -> Preprocess:
        """The validation transform (mean, crop, scale) the exported net expects before it."""
        mean = None
        if self.mean is not None:
            mean = np.asarray(self.mean["values"], np.float32).reshape(self.mean["shape"])
        return Preprocess(mean=mean, crop_size=self.crop_size, scale=self.scale)

    @staticmethod
    def mean_json(mean: np.ndarray | None) -> dict[str, Any] | None:
        if mean is None:
            return None
        # float32 → Python float → JSON is exact, and so is the way back
        return {"shape": list(mean.shape), "values": np.asarray(mean, np.float32).ravel().tolist()}

    def to_props(self) -> dict[str, str]:
        """ONNX ``metadata_props``: every field under its own key, the value as JSON."""
        import json

        return {k: json.dumps(v) for k, v in self.to_json().items()}

    @classmethod
    def from_props(cls, props: dict[str, str], *, source: str) -> DeployInfo:
        import json

        try:
            value = {k: json.loads(v) for k, v in props.items()}
        except ValueError as e:
            raise UpcallError(f"{source}: metadata is not upcall's JSON ({e})") from None
        if "class_names" not in value:
            raise UpcallError(f"{source}: not a model from `upcall export` (no class_names)")
        return cls.from_json(value, source=source)
