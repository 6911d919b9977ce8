"""Audio: the clip format and where clips come from.

In: files on disk (AIFF/WAV/FLAC) or a seed. Out: checked sample arrays (``clip``), the Kaggle
layout of synthetic clips (``synth``, signal model in ``sounds``), long synthetic recordings with
their truth (``recording``), Raven selection tables (``raven``) and which table belongs to which
recording (``pairing``). Never imports torch.
"""
