"""The version of synccli, below every layer: the CLI prints it and reports record it."""

__version__ = "0.1.0"
