"""Caffe networks as NetParameter messages, torch-free.

``build.py`` (layer builders), ``phase.py`` (Caffe's NetState include/exclude filter),
``shapes.py`` (blob shape arithmetic and cost), ``zoo/`` (AlexNet, GoogLeNet, WhaleNet and how a
network is fitted to a dataset), ``load.py`` (a network by name or prototxt, with builder
parameters), ``classweights.py`` (class weights as InfogainLoss) and ``augment_layer.py``
(online augmentation as a Python layer in the net).
"""
