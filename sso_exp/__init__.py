"""sso-exp: Self-Steering Optimization experiments. One sub-package per stage, each importing
only the ones before it: config -> data -> models -> steering -> training -> evaluation ->
tracking -> pipeline (docs/algorithm.md is the algorithm)."""

__version__ = "0.1.0"
