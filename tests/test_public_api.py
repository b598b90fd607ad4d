"""The public API in ``synccli/__init__.py``: every exported name imports and is documented,
and importing the package does not load the server."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import synccli


@pytest.mark.parametrize("name", synccli.__all__)
def test_every_public_name_imports_and_has_a_docstring(name: str) -> None:
    value = getattr(synccli, name)
    if name == "__version__":
        assert value.count(".") == 2
        return
    if name == "STATES":
        assert "Present" in value
        return
    assert inspect.isclass(value) or inspect.isfunction(value), name
    doc = vars(value).get("__doc__") if inspect.isclass(value) else value.__doc__
    # a dataclass without a docstring gets its signature as one: that does not count
    assert doc and doc.strip() and not doc.startswith(f"{value.__name__}("), name


def test_all_is_unique_and_what_a_star_import_gives() -> None:
    assert len(set(synccli.__all__)) == len(synccli.__all__)
    assert set(synccli.__all__) <= set(dir(synccli))
    namespace: dict[str, object] = {}
    exec("from synccli import *", namespace)  # the star import follows __all__
    assert {name for name in namespace if name != "__builtins__"} == set(synccli.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        synccli.no_such_name  # noqa: B018


def test_importing_the_package_does_not_load_the_server_store_or_websockets() -> None:
    probe = (
        "import sys, synccli\n"
        "heavy = [m for m in sys.modules if m.startswith(('synccli.server', 'synccli.store',"
        " 'synccli.report', 'websockets'))]\n"
        "assert not heavy, heavy\n"
        "synccli.SyncServer\n"
        "assert 'synccli.server.app' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)
