"""Augmentation transforms, numpy-only: ``clips.py`` (copies of waveforms: noise, gain, time and
frequency shift; the offline ``upcall augment`` in :mod:`upcall.data.augment` writes lists of
them), ``batches.py`` (online augmentation of spectrogram batches) and ``caffe_layer.py`` (real
Caffe's Python layer that runs ``batches.py``; both are copied into a job folder). The net-spec
layer is :mod:`upcall.network.augment_layer`; the torch engine's is
:mod:`upcall.engines.torch.pylayers`.
"""
