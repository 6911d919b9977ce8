"""Data: from clips to the dataset a network trains on.

In: a Kaggle-layout data directory (``train.csv``, ``train/``, ``test/``). Out, step by step:
spectrogram images (``spectrogram`` holds the modes and PNG I/O, ``render`` the command), the
DIGITS lists and labels.txt (``lists``), resized images (``resize``), Caffe Datum records and mean
files (``datum``), the LMDB dataset (``dataset``; one LMDB is written by ``dbwriter``) and its
contact sheet (``explore``). Never imports torch.
"""
