"""`make run`: serve the app locally on 127.0.0.1:7071 with Azurite and the offline provider.

Uses Azure Functions Core Tools (`func start`) when they are on the PATH, else the local host.
Azurite listens on its default ports (so `UseDevelopmentStorage=true` works) and keeps its data
in `.azurite/`; an Azurite already listening there is reused. Ctrl-C stops what this started.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys

from shared.local.azurite import REPO_ROOT, Azurite, connection_string
from shared.local.offline.sample import SAMPLE_STAGING_GALLERY_ID, seed_sample_factory
from shared.local.offline.store import ArmStore

AZURITE_PORTS = (10000, 10001, 10002)


def main() -> int:
    settings = REPO_ROOT / "local.settings.json"
    if not settings.exists():
        shutil.copy(REPO_ROOT / "local.settings.example.json", settings)
        print(f"created {settings.name} from local.settings.example.json (edit the copy)")
    azurite = None
    if not _listening(AZURITE_PORTS[0]):
        azurite = Azurite(REPO_ROOT / ".azurite", False, *AZURITE_PORTS).start()
        print("Azurite started on 127.0.0.1:10000-10002, data in .azurite/")
    else:
        print("reusing the Azurite already listening on 127.0.0.1:10000")
    store = ArmStore(connection_string(*AZURITE_PORTS), "offline-arm")
    if store.find(SAMPLE_STAGING_GALLERY_ID) is None:  # seed once: re-seeding would reset the templates
        seed_sample_factory(store)
    print("offline image factory ready: templates win11-avd-monthly, ubuntu-2204-cis")
    print("simulate a build:  .venv/bin/python -m shared.local.offline run win11-avd-monthly [--fail]")
    func = shutil.which("func")
    command = [func, "start"] if func else [sys.executable, "-m", "shared.local.host", "--script-root", str(REPO_ROOT),
                                            "--settings", str(settings)]  # fmt: skip
    try:
        return subprocess.call(command, cwd=REPO_ROOT)
    except KeyboardInterrupt:
        return 0
    finally:
        if azurite:
            azurite.stop()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    sys.exit(main())
