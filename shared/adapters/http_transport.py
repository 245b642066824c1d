"""The HTTP transport of the storage clients: requests, with the environment read once.

By default azure-core's `RequestsTransport` lets requests consult the process environment on
*every* request (`trust_env`): it scans all variables for `*_proxy` and `no_proxy`, reads
`REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE`, and looks for a netrc file. That is about a tenth of
the CPU of a storage request here, and more in a Functions worker, whose environment holds every
app setting. Storage requests are on every event's path, hence these clients; Resource Manager
clients keep the SDK default (their round trips are tens of milliseconds).

The environment does not change during a worker's life (changing an app setting restarts it),
so the app reads it once and hands the transport what requests would have found:

* a CA bundle (`REQUESTS_CA_BUNDLE`, else `CURL_CA_BUNDLE`) becomes `connection_verify`,
  exactly as requests would have applied it to a verifying request;
* proxies or a netrc file keep the SDK default (requests' proxy bypass rules and netrc
  matching stay where they are), so such deployments behave exactly as before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")  # requests' order of precedence
NETRC_FILES = (".netrc", "_netrc")


@dataclass(frozen=True)
class RequestsEnvironment:
    """What requests would take from the environment on each request."""

    proxies: bool
    netrc: bool
    ca_bundle: str | None

    @property
    def needs_per_request_lookups(self) -> bool:
        return self.proxies or self.netrc


def requests_environment(environ: Mapping[str, str] | None = None, home: Path | None = None) -> RequestsEnvironment:
    environ = os.environ if environ is None else environ
    proxies = any(name.lower().endswith("_proxy") and value for name, value in environ.items())
    ca_bundle = next((environ[name] for name in CA_BUNDLE_VARIABLES if environ.get(name)), None)
    return RequestsEnvironment(proxies, bool(environ.get("NETRC")) or _netrc_in_home(home), ca_bundle)


def _netrc_in_home(home: Path | None) -> bool:
    try:
        home = Path.home() if home is None else home
    except RuntimeError:  # no resolvable home directory: requests finds no netrc there either
        return False
    return any((home / name).exists() for name in NETRC_FILES)


@cache
def _environment_at_start() -> RequestsEnvironment:
    return requests_environment()


def sdk_transport_options() -> dict[str, Any]:
    """Keyword arguments for a storage client's constructor: a transport of its own, or none (the default)."""
    found = _environment_at_start()
    if found.needs_per_request_lookups:
        return {}
    from azure.core.pipeline.transport import RequestsTransport

    verify: bool | str = found.ca_bundle or True
    return {"transport": RequestsTransport(use_env_settings=False, connection_verify=verify)}
