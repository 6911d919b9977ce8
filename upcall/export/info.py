"""A model's :class:`DeployInfo`: what an exported model needs beside the graph (torch-free)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from upcall.inference.model import NetModel
from upcall.inference.onnx.metadata import DeployInfo
from upcall.job.config import JobConfig
from upcall.job.snapshots import iteration_of


def deploy_info(model: NetModel) -> DeployInfo:
    """The transform, sizes, class names and spectrogram settings of ``model``'s deploy net,
    and where it came from (its job, network and snapshot iteration)."""
    deploy, pre = model.deploy, model.deploy.preprocess
    config = JobConfig.read(deploy.job) if model.kind == "job" else None
    return DeployInfo(
        input_name=deploy.input,
        input_shape=list(deploy.input_shape),
        output_name=deploy.output,
        is_prob=deploy.is_prob,
        class_names=list(deploy.class_names),
        crop_size=pre.crop_size,
        scale=pre.scale,
        mean=DeployInfo.mean_json(pre.mean),
        input=asdict(model.input_spec),
        spectrograms=model.spectrograms,
        source={
            # a download's deploy.job is the temporary folder it was unpacked to: name the archive
            "job": str(deploy.job if model.kind == "job" else model.path),
            "network": config.network if config is not None else None,
            "snapshot": iteration_of(Path(deploy.weights).name),
            "weights": Path(deploy.weights).name,
        },
    )
