"""A job's :class:`DeployInfo`: what an exported model needs beside the graph (torch-free)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from upcall.engines.jobspec import snapshots
from upcall.engines.onnx.metadata import DeployInfo
from upcall.engines.predict import Deploy


def deploy_info(deploy: Deploy) -> DeployInfo:
    """The transform, sizes, class names and spectrogram settings of ``deploy``'s job."""
    from upcall.model.jobconfig import JobConfig
    from upcall.results.classify import InputSpec, dataset_info

    dataset = dataset_info(deploy.job)
    config = JobConfig.read(deploy.job)
    pre = deploy.preprocess
    iteration = next(
        (i for i, p in snapshots(deploy.job, prefix=None).items() if p == deploy.weights), None
    )
    return DeployInfo(
        input_name=deploy.input,
        input_shape=list(deploy.input_shape),
        output_name=deploy.output,
        is_prob=deploy.is_prob,
        class_names=list(deploy.class_names),
        crop_size=pre.crop_size,
        scale=pre.scale,
        mean=DeployInfo.mean_json(pre.mean),
        input=asdict(InputSpec.from_dataset_info(dataset)),
        spectrograms=dataset.spectrograms.to_json() if dataset.spectrograms else None,
        source={
            "job": str(deploy.job),
            "network": config.network if config is not None else None,
            "snapshot": iteration,
            "weights": Path(deploy.weights).name,
        },
    )
