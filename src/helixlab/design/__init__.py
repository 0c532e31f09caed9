"""Sequence design with trained runs: greedy in-silico evolution and a genetic algorithm, under
constraints, checked by independent models (see helixlab.design.run)."""

from helixlab.design.run import design

__all__ = ["design"]
