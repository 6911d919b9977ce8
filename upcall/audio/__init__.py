"""Audio: the clip format and where clips come from.

In: files on disk (AIFF/WAV/FLAC) or a seed. Out: checked sample arrays (``clip``), the Kaggle
layout of synthetic clips (``synth``, signal model in ``sounds``), long synthetic recordings with
their truth (``recording``), and Raven selection tables (``raven``). Never imports torch.
"""
