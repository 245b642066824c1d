"""Local stand-ins for Azure: Azurite launcher, offline ARM provider, Functions host.

Never imported by production code paths.
"""
