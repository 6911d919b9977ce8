"""Workflows: commands that run several stages (``train``: a job through an engine; ``sweep``:
the tutorial's network × learning-rate grid; ``fit``: your clips to a model by the recipe
(``recipe``, ``pipeline``); ``search``: an Optuna search (``search_space``, ``search_study``);
``demo``: synthetic data to a compared model)."""
