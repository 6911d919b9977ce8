"""Model: Caffe network and solver definitions, written as job folders.

In: a dataset folder (its ``dataset.json`` and labels). Out: job folders with solver.prototxt,
train_val.prototxt, deploy.prototxt and config.json (``nets``), built from the named networks
(``networks``) through the net-spec helpers (``netspec``), Caffe's layer filter (``netstate``),
shape arithmetic (``shapes``) and DIGITS's solver rules (``solver``). Never imports torch.
"""
