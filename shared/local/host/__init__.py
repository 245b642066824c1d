"""A local Azure Functions host for the Python v2 programming model, standing in for Core Tools.

Runs an unchanged `function_app.py` with the endpoints `func start` serves, so end-to-end tests
run alike against this host, Core Tools or a deployment. Modules: `config` (settings files),
`index` (importing and describing functions), `routes`, `messages`, `eventgrid`, `invoke`,
`endpoints`, `server` (HTTP), `ncrontab` and `timers`, `runtime` (`LocalHost`), `__main__` (CLI).
"""

from shared.local.host.config import HostKeys, HostStartupError
from shared.local.host.runtime import LocalHost

__all__ = ["HostKeys", "HostStartupError", "LocalHost"]
