"""The job folder: everything a training job's folder is, in one place.

``config.py`` (config.json), ``spec.py`` (a job parsed: solver, nets, dataset, torch-free),
``snapshots.py`` (snapshot sets: the one name pattern and completeness rule), ``state.py`` (where
a run starts: the start point, clearing an earlier run's results), ``records.py`` (metrics.jsonl
records, summary.json, wall_time.json), ``writer.py`` (JobWriter: the one writer of a job's
results, summary.json and wall times included, for every engine's run loop and the baseline),
``curves.py`` (curves.png), ``tensorboard.py`` (the records as TensorBoard scalars),
``deploy.py`` (the deploy net, its input transform and the snapshot every runner of it uses),
``datasetinfo.py`` (a dataset as a job sees it), ``solver.py`` (DIGITS's solver rules) and
``nets.py`` (``upcall nets``: job folders per network and learning rate). Never imports torch,
and nothing of the engines, reports or inference: they import it.
"""
