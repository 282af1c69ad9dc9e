"""Steering: the writer model's principles, sampling and filters, and the round that turns
queries into preference pairs (docs/algorithm.md §1-3)."""
