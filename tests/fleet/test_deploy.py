"""deploy/: the systemd template unit, the container image's command, compose and Kubernetes
descriptions — checked as far as this machine can (no container engine runs here)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.cli import build_parser
from harness.fleet.config import load_fleet_config
from tests.conftest import ROOT

yaml = pytest.importorskip("yaml")  # PyYAML: the docs extra's (mkdocs) dependency
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "mynacard-fleet@.service"


def _fleet_args(argv: list[str]) -> Any:
    """``argv`` (after ``mynacard``) parsed by the real parser: a ``fleet`` command."""
    args = build_parser().parse_args(argv)
    assert args.command == "fleet"
    return args


def _unit_value(key: str) -> str:
    lines = [line for line in UNIT.read_text().splitlines() if line.startswith(f"{key}=")]
    assert len(lines) == 1, key
    return lines[0].split("=", 1)[1]


def test_unit_runs_the_fleet_of_its_instance() -> None:
    argv = shlex.split(_unit_value("ExecStart"))
    assert argv[0].endswith("/mynacard")
    args = _fleet_args(argv[1:])
    assert str(args.config) == "/etc/mynacard/fleet/%i.toml"
    assert _unit_value("KillSignal") == "SIGTERM"
    assert _unit_value("RestartPreventExitStatus") == "2"  # a bad fleet file: no restart loop


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # The program is not installed here: verify the unit with one that exists.
    text = UNIT.read_text().replace("/opt/mynacard/bin/mynacard", "/bin/true")
    instance = tmp_path / "mynacard-fleet@lab-a.service"
    (tmp_path / UNIT.name).write_text(text)
    instance.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(instance)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "mynacard-fleet" not in done.stderr, done.stderr


def _containerfile_command() -> list[str]:
    text = (DEPLOY / "container" / "Containerfile").read_text()
    entry = next(line for line in text.splitlines() if line.startswith("ENTRYPOINT "))
    cmd = next(line for line in text.splitlines() if line.startswith("CMD "))
    return [*json.loads(entry.split(" ", 1)[1]), *json.loads(cmd.split(" ", 1)[1])]


def test_container_runs_the_fleet() -> None:
    command = _containerfile_command()
    assert command[0] == "mynacard"
    assert str(_fleet_args(command[1:]).config) == "/etc/mynacard/fleet.toml"


def _load_example(path: Path, state: Path) -> None:
    """An example fleet file, its state directory (/var/lib/mynacard) moved to ``state``."""
    copy = state / path.name
    copy.write_text(path.read_text().replace("/var/lib/mynacard", str(state)))
    assert load_fleet_config(copy).kiosks


def test_compose_file(tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY / "container" / "compose.yaml").read_text())
    services = compose["services"]
    assert len(services) >= 2
    mounted: list[str] = []
    for name, service in services.items():
        assert service["stop_signal"] == "SIGTERM", name
        assert service["build"]["dockerfile"] == "deploy/container/Containerfile"
        assert (DEPLOY / "container" / service["build"]["context"]).resolve() == ROOT
        config = [v for v in service["volumes"] if v.endswith(":/etc/mynacard/fleet.toml:ro")]
        assert len(config) == 1, name
        mounted.append(config[0].split(":")[0])
        state = [v for v in service["volumes"] if ":/var/lib/mynacard" in v]
        assert len(state) == 1 and state[0].split(":")[0] in compose["volumes"], name
    assert len(set(mounted)) == len(mounted)  # a fleet file per process
    for source in mounted:
        _load_example(DEPLOY / "container" / source, tmp_path)


def test_kubernetes_description() -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "fleet.yaml").read_text()))
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    claim = next(d for d in documents if d["kind"] == "PersistentVolumeClaim")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    assert spec["selector"]["matchLabels"] == spec["template"]["metadata"]["labels"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert str(_fleet_args(["fleet", *container["args"]]).config) == "/etc/mynacard/fleet.toml"
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        assert mount["name"] in volumes
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
