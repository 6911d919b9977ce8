"""Workflows: commands that run several stages (``train``: a job through an engine; ``sweep``:
the tutorial's network × learning-rate grid; ``demo``: synthetic data to a compared model)."""
