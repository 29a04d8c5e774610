"""Linli (邻里): govern an urban residential community with data."""

__version__ = "0.1.0"
