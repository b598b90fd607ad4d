"""An installed synccli, as a new user gets it: build the wheel, install it with its default
dependencies into a fresh virtual environment, and run the main job from another directory.

Nothing of the source tree is on the path there: the scenarios, the default scenario and
the fault layer must all come from the wheel and its declared dependencies.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from synccli.harness.scenario import SCENARIO_DIR
from tests.conftest import seconds

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SHORT_OUTAGE = """\
description = "two clients, one short outage through the embedded proxy"
duration_s = 3
clients = 2
writers = 1
rate = 5
drain_timeout_s = 10

[[faults]]
kind = "down"
at_s = 1
for_s = 0.5
target = 1.0
"""


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path
    workdir: Path

    def synccli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "synccli"), *args],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=seconds(timeout),
        )


#: What the wheel is built from: the project's metadata and the package, nothing else.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "synccli")
#: Files a run, a cache or an interpreter leaves in the package folder.
GENERATED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _run(argv: list[str]) -> None:
    """``argv``, which must succeed; its output in the failure if it does not."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds(300))
    assert done.returncode == 0, (argv, done.stdout[-2000:], done.stderr[-4000:])


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("install")
    # Built from a copy: the build writes into its source folder and walks all of it, and a
    # copy keeps it apart from whatever else runs in the checkout meanwhile.
    source = base / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=GENERATED)
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = base / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)])
    (wheel,) = dist.glob("synccli-*.whl")
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    _run([str(bin_dir / "pip"), "install", "-q", str(wheel)])
    workdir = base / "elsewhere"
    workdir.mkdir()
    yield Installed(wheel, bin_dir, workdir)


def test_the_wheel_ships_the_scenarios_and_the_license(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = wheel.read(metadata).decode()
    shipped = {p.name for p in SCENARIO_DIR.glob("*.toml")}
    assert {f"synccli/scenarios/{name}" for name in shipped} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: MIT" in text
    assert "Requires-Dist: toxiproxy-python" in text.replace(">", " ").replace("=", " ")


def test_scenarios_list_and_show_from_another_directory(installed: Installed) -> None:
    listed = installed.synccli("scenarios", "list")
    assert listed.returncode == 0, listed.stderr
    names = {line.split()[0] for line in listed.stdout.splitlines()[2:]}
    assert names == {p.stem for p in SCENARIO_DIR.glob("*.toml")} | {"default"}
    assert "INVALID" not in listed.stdout

    shown = installed.synccli("scenarios", "show", "ci-gate")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("# ci-gate: resolved")
    assert 'kind = "packet_loss"' in shown.stdout


def test_simulate_without_faults(installed: Installed) -> None:
    run = installed.synccli(
        "simulate", "--no-faults", "--clients", "2", "--duration", "2", "--rate", "5",
        "--out", "plain", "--quiet",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert (installed.workdir / "plain" / "summary.json").is_file()
    assert "Traceback" not in run.stderr


def test_simulate_with_the_embedded_proxy(installed: Installed) -> None:
    scenario = installed.workdir / "outage.toml"
    scenario.write_text(SHORT_OUTAGE)
    run = installed.synccli("simulate", "--scenario", str(scenario), "--out", "outage", "--quiet")
    assert run.returncode == 0, run.stdout + run.stderr
    history = (installed.workdir / "outage" / "history.jsonl").read_text()
    assert '"phase": "end"' in history or '"phase":"end"' in history
    assert "Traceback" not in run.stderr


def test_a_missing_pyodbc_is_one_sentence_and_exit_4(installed: Installed) -> None:
    run = installed.synccli(
        "simulate", "--no-faults", "--duration", "1", "--quiet", "--out", "odbc",
        "--db", "postgresql+pyodbc://postgres@127.0.0.1:5432/x?driver=PostgreSQL+Unicode",
    )  # fmt: skip
    assert run.returncode == 4, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "pyodbc" in run.stderr and "synccli[odbc]" in run.stderr
    db = installed.synccli("db", "status", "--db", "postgresql+pyodbc://postgres@127.0.0.1/x")
    assert db.returncode == 4
    assert db.stderr.count("\n") == 1 and "pyodbc" in db.stderr
