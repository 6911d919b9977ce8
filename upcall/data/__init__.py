"""Data: from clips to the dataset a network trains on.

In: a Kaggle-layout data directory (``train.csv``, ``train/``, ``test/``). Out, step by step:
spectrogram images (``spectrogram`` holds the modes and PNG I/O, ``render`` the command,
``pngroot`` a ROOT's spectrograms.json and PNG paths), the DIGITS lists and labels.txt (``lists``
the command, ``listsfolder`` a LISTS folder's lists.json and labels), resized images
(``resize``), Caffe Datum records and mean files (``datum``), the LMDB dataset (``dataset``; one
LMDB is written by ``dbwriter``) and its contact sheet (``explore``). Never imports torch.
"""
