"""Golden image governance for Azure: the application package."""

__version__ = "0.1.0"
