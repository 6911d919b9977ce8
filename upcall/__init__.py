"""upcall: find North Atlantic right whale up-calls in underwater audio with spectrogram CNNs.

One subpackage per stage, in the order the data flows (ARCHITECTURE.md has the tree; the
layers are the import-linter contract in .importlinter):

``audio``, ``augment``   clips and recordings; augmentation transforms
``data``                 clip → spectrogram PNG → train/val lists → Caffe LMDB dataset
``network``, ``job``     Caffe networks; the job folder (prototxts, config.json, its results)
``engines``              job folder → trained job (torch, caffe, digits; one run loop)
``classical``            the Kaggle winners' method as a baseline job
``inference``            any trained model → class probabilities (``load_model``)
``detect``, ``export``, ``reports``   detection in recordings, exported models, comparisons
``digits``, ``digits_server``         DIGITS's REST API: a client, and a server backed by upcall
``workflows``            several stages in one command (train, sweep, fit, demo, search)

Only ``engines/torch/``, ``inference/torch/`` and the ONNX export import torch; the top-level
modules (``errors``, ``fsutil``, ``progress``, ``parallel``, ``proto`` ...) are shared by all.
"""

__version__ = "0.1.0"
