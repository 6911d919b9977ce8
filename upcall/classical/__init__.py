"""The classical baseline: the 2013 Kaggle winners' method, the yardstick for the networks.

    clip → contrast-enhanced spectrograms → template correlations, row and click statistics
         + median-normalised spectrogram → band and ridge statistics, up-sweep kernels
         → gradient-boosted trees → P(whale)

``features`` (one clip → its feature vector), ``shapes`` (the median-normalised image's
features), ``correlate`` (template correlation), ``templates`` (the bank cut from training
up-calls), ``model`` (the fitted job: save, load, classify clips), ``baseline`` (the
``upcall baseline`` command: lists → features → fit → a job folder like any other).
Torch-free: it reads the audio and the lists and writes a job through ``upcall.job.writer``.
"""
