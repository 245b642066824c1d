"""The domain core: models and rules with no I/O."""
