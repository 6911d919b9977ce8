"""The torch inference backend: ``predict.py`` (the Predictor, on the deploy net of
:mod:`upcall.engines.torch.deploy` with batch norm folded by :mod:`upcall.engines.torch.plan`),
``fcn.py`` (the fully convolutional pass over long recordings)."""
