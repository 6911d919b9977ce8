"""What a monitoring survey states from detections: presence per hour and day against recording
effort (``upcall presence``), torch-free. Above :mod:`upcall.audio` (tables, start times), below
``detect`` and ``reports``, which both use it."""
