"""`LocalHost`: the app hosted in this process, started and stopped as a unit.

Start-up follows Core Tools: export local.settings.json `Values` (the environment wins),
import the app module from the script root, index its functions, then serve HTTP and fire
timers. Anything the host cannot run fails start-up with `HostStartupError`.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from shared.local.host.config import (
    DEFAULT_PORT,
    HostKeys,
    HostStartupError,
    export_settings,
    read_local_settings,
    read_route_prefix,
    withdraw_settings,
)
from shared.local.host.endpoints import Endpoints
from shared.local.host.index import (
    ALL_METHODS,
    EventGridTrigger,
    HttpTrigger,
    IndexedFunction,
    LoadedModule,
    find_app,
    import_app_module,
    index_functions,
)
from shared.local.host.server import LocalServer
from shared.local.host.timers import TimerScheduler


class LocalHost:
    """Host `module` from `script_root` on http://host:port until `stop()`; also a context manager.

    `port=None` takes local.settings.json `Host.LocalHttpPort`, else 7071; `port=0` a free port.
    Unlike the CLI, it does not change the working directory (a process-wide side effect);
    `stop()` withdraws the settings it exported and unloads the app module.
    """

    def __init__(
        self,
        script_root: str | Path,
        module: str = "function_app",
        settings_path: str | Path | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        timers: bool = True,
        keys: HostKeys | None = None,
    ) -> None:
        self.script_root = Path(script_root).resolve()
        self.module = module
        self.settings_path = Path(settings_path) if settings_path else self.script_root / "local.settings.json"
        self.host = host
        self.timers = timers
        self.keys = keys
        self._requested_port = port
        self._functions: list[IndexedFunction] = []
        self._route_prefix = ""
        self._server: LocalServer | None = None
        self._scheduler: TimerScheduler | None = None
        self._exported: list[str] = []
        self._settings: dict[str, str] = {}
        self._loaded: LoadedModule | None = None

    def start(self) -> LocalHost:
        if self._server is not None:
            raise RuntimeError("the host is already running")
        settings = read_local_settings(self.settings_path)
        self._settings = dict(settings.values)
        self._exported = export_settings(settings.values)
        try:
            self._loaded = import_app_module(self.script_root, self.module)
            self._functions = index_functions(find_app(self._loaded.module))
            self._route_prefix = read_route_prefix(self.script_root)
            endpoints = Endpoints(
                self._functions, route_prefix=self._route_prefix, script_root=self.script_root, keys=self.keys
            )
            port = self._requested_port
            if port is None:
                port = DEFAULT_PORT if settings.local_http_port is None else settings.local_http_port
            try:
                self._server = LocalServer(self.host, port, endpoints)
            except OSError as error:
                raise HostStartupError(f"cannot listen on {self.host}:{port}: {error.strerror}") from error
            self._server.start()
            if self.timers:
                self._scheduler = TimerScheduler(self._functions, self.script_root)
                self._scheduler.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._loaded is not None:
            self._loaded.unload()
            self._loaded = None
        withdraw_settings(self._exported, self._settings)
        self._exported = []

    def __enter__(self) -> LocalHost:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the host is not running")
        return self._server.port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def functions(self) -> tuple[IndexedFunction, ...]:
        return tuple(self._functions)

    def describe_functions(self) -> list[str]:
        """One line per function, as Core Tools lists them at start-up."""
        lines = []
        prefix = f"/{self._route_prefix}" if self._route_prefix else ""
        for function in self._functions:
            trigger = function.trigger
            if isinstance(trigger, HttpTrigger):
                methods = "" if trigger.methods == ALL_METHODS else f"[{','.join(sorted(trigger.methods))}] "
                lines.append(f"{function.name}: {methods}{self.base_url}{prefix}/{trigger.route.template}")
            elif isinstance(trigger, EventGridTrigger):
                webhook = f"{self.base_url}/runtime/webhooks/EventGrid?functionName={function.name}"
                lines.append(f"{function.name}: eventGridTrigger (POST {webhook})")
            else:
                lines.append(f"{function.name}: timerTrigger")
        return lines
