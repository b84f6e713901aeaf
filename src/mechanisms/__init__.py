"""Mechanisms: run an engineering organisation on mechanisms rather than good intentions."""

__version__ = "0.1.0"
