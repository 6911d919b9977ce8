"""Detection in long recordings and its evaluation (``upcall detect``, ``upcall evaluate``).

    recordings (WAV/FLAC/AIFF, any length and rate)
      → audio/stream.py: 2 kHz mono blocks, read with bounded memory, cut into overlapping 2-s windows
      → score.py: the job's window images → Predictor.probabilities → one score per window
      → events.py: smooth → threshold → runs grouped → overlaps merged → Detection boxes
      → boxes.py: each box tightened to its call from the recording's audio (work.py: one
        recording's work in a worker)
      → run.py: Raven tables per recording (made.py: what made each, for resume), combined.py
        (the file sequence, sequence.txt, detections.csv, recordings.csv)
      → evaluate.py: precision, recall, F1, AP against a truth table (matching.py: which
        detection found which call; survey_figures.py: per hour, per recording, hourly presence)

Torch-free at import: a backend is imported only when a model is loaded.
"""
