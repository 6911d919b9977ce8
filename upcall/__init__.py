"""upcall: find North Atlantic right whale up-calls in underwater audio with spectrogram CNNs.

One subpackage per stage, in the order the data flows:

``audio``     clips and recordings: the clip format, the synthetic signal model, Raven tables
``data``      clip → spectrogram PNG → train/val lists → Caffe LMDB dataset
``model``     Caffe network and solver definitions → job folders (prototxts, config.json)
``engines``   job folder → trained job (torch, caffe; one run loop, one inference interface)
``results``   trained job → metrics, curves, report, classification
``workflows`` several stages in one command (train, sweep, demo)

``audio``, ``data``, ``model`` and ``results`` never import torch; ``errors``, ``fsutil``,
``progress``, ``parallel`` and ``proto`` are shared by all of them.
"""

__version__ = "0.1.0"
