"""sso-exp: Self-Steering Optimization experiments. One sub-package per stage, each importing
only the ones before it: config -> data -> models -> steering -> training -> evaluation ->
tracking -> pipeline (docs/algorithm.md is the algorithm)."""

import os

__version__ = "0.1.0"

# torch's CPU allocator puts blocks of 2 MB and more on huge-page-aligned memory when this is
# set before its first allocation (it reads it once, so here, ahead of any torch import):
# glibc's heap then keeps far less freed memory beside the live tensors (with the gradients
# freed after training, the float32 main job's peak 4.45 -> 3.74 GiB; docs/measurements.md).
# THP_MEM_ALLOC_ENABLE=0 in the environment keeps torch's default.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
