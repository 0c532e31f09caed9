"""helixlab: train, evaluate, interpret and apply deep models of DNA sequence function."""

__version__ = "0.1.0"
