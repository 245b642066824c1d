"""Offline Azure provider: ARM-shaped documents in Azurite Blob storage and a simulated Image Builder.

Stands in for Resource Manager in local runs and tests (Azure is unreachable there):

- `store`: the documents, one blob per resource, shared by every local process;
- `adapters`: the `ImageBuilder` and `Gallery` ports over the store;
- `simulator`: an Image Builder run (template status, staging image version, run output);
- `events`: the Resource Manager events Azure delivers through Event Grid, and their delivery;
- `sample`: a realistic image factory to start from.

Never imported by production code paths.
"""
