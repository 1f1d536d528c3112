"""PyTorch learning core: networks, agents, dataset format, sampler, trainer, Policy.

Importing this package does not import torch; import the submodules you need.
"""
