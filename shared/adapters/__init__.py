"""Adapters at the edge: the only modules that import Azure SDKs."""
