"""The SDK wheel's modules (sdk/build.py) import no Faust, aiokafka, aiohttp or private
``hub._*`` module, ship everything they import, and pin what the hub pins."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

from hub.config import PROJECT_ROOT
from sdk.build import HUB_SIDE, sdk_modules

# Run in a fresh interpreter: the modules below are refused by a finder put first on the
# meta path, so importing one anywhere in the SDK's import closure raises.
_PROBE = """
import importlib, importlib.abc, json, sys

BLOCKED = ("faust", "mode", "aiokafka", "aiohttp")

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in BLOCKED or name.startswith("hub._"):
            raise ImportError(f"the SDK imported {name}")
        return None

sys.meta_path.insert(0, Refuse())
for module in json.loads(sys.argv[1]):
    importlib.import_module(module)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("hub", "connectors"))))
"""


def _imported(modules: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(modules)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_sdk_imports_no_faust_aiokafka_aiohttp_or_private_hub_module() -> None:
    done = _imported(sdk_modules())

    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) <= set(sdk_modules())  # all it imports is shipped


def test_the_probe_refuses_what_hub_side_modules_import() -> None:
    # events reads hub.events through the registry (hub._schema_state), and the worker's
    # app is Faust: the probe catches both. (simulate is hub-side for what it knows, the
    # hub's person ids, not for what it imports: HUB_SIDE keeps it out, tested below.)
    for module, caught in (
        ("connectors.events", "hub._schema_state"),
        ("hub.app", "faust"),
    ):
        done = _imported([module])

        assert done.returncode != 0, module
        assert f"the SDK imported {caught}" in done.stderr


def test_no_sdk_module_pulls_in_a_hub_side_connector_or_the_registry() -> None:
    assert not HUB_SIDE & set(sdk_modules())
    assert "hub.registry" not in sdk_modules()  # it writes _schemas: the hub's job


def test_the_sdk_pins_what_the_hub_pins() -> None:
    hub = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    sdk = tomllib.loads((PROJECT_ROOT / "sdk" / "pyproject.toml").read_text())["project"]

    assert sdk["version"] == hub["version"]
    assert set(sdk["dependencies"]) <= set(hub["dependencies"])
    assert not any(
        pin.split("==")[0] in ("faust-streaming", "aiokafka", "aiohttp")
        for pin in sdk["dependencies"]
    )
