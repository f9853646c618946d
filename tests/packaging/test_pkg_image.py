"""The image and the chart agree with the runtime: the Dockerfile's entrypoint and user, and every flag the
chart passes is one `modelops run` accepts and reads the way the chart means it."""

from __future__ import annotations

import re

import pytest
from pkg_support import REPO, VALUE_SETS, container, render

from modelops.cli import build_parser
from modelops.cli.run import config_from

DOCKERFILE = (REPO / "Dockerfile").read_text()


def _instructions(name: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.+)$", DOCKERFILE, re.MULTILINE)]


def test_dockerfile_runs_modelops_run_as_non_root_on_slim_python() -> None:
    stages = _instructions("FROM")
    assert len(stages) == 2
    assert all("slim" in s for s in stages)
    assert _instructions("ENTRYPOINT") == ['["modelops", "run"]']
    user = _instructions("USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert gid.isdigit()
    assert int(gid) != 0
    # A read-only root filesystem: no byte-code writes at run time, HOME and TMPDIR on the /tmp emptyDir.
    assert "PYTHONDONTWRITEBYTECODE=1" in DOCKERFILE
    assert "HOME=/tmp" in DOCKERFILE
    assert "compileall" in DOCKERFILE


def test_chart_runs_as_the_image_user() -> None:
    uid = int(_instructions("USER")[-1].split(":")[0])
    deployment = next(o for o in render() if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*")] == "*"
    assert {"!pyproject.toml", "!operator/"} <= set(lines)


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_runtime_accepts_the_chart_flags(value_set: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MODELOPS_NAMESPACES", "MODELOPS_PEERING", "MODELOPS_PROMETHEUS_URL"):
        monkeypatch.delenv(var, raising=False)
    objects = render(value_set)
    args = container(objects)["args"]
    config = config_from(build_parser().parse_args(["run", *args]))
    assert config.metrics_port == 8080
    assert config.health_port == 8081
    assert config.log_format == "json"
    if value_set == "namespaced":
        assert tuple(config.namespaces) == ("team-a", "team-b")
        assert config.prometheus.token_file == "/etc/modelops/prometheus-auth/token"
        assert config.prometheus.ca_file == "/etc/modelops/prometheus-ca/ca.crt"
    else:
        assert tuple(config.namespaces) == ()
    if value_set == "ha-monitoring":
        assert config.peering == "modelops-ha"
        assert not config.standalone
        assert config.prometheus.username == "modelops"
        assert config.prometheus.password_file == "/etc/modelops/prometheus-auth/password"
    else:
        assert config.standalone
        assert config.peering is None
