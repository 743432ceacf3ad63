"""Deployment files: what the image leaves out, and `docker compose config` on the compose file (where the
compose plugin is installed; elsewhere the test says why it skips)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT


def test_the_image_leaves_out_secrets_models_and_local_data() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", ".env.*", "models/", "var/", ".venv"} <= ignored
    # Model hub access is a setting at run time (RAG_HF_OFFLINE), not baked into the image.
    assert "HF_HUB_OFFLINE" not in (ROOT / "Dockerfile").read_text()


def _compose() -> list[str]:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine: `docker compose config` cannot run")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        reason = (probe.stderr or probe.stdout).strip().splitlines()[0] if (probe.stderr or probe.stdout).strip() else ""
        pytest.skip(f"the docker compose plugin is not installed here ({reason})")
    return [docker, "compose"]


def _config(compose: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    empty = tmp_path / "empty.env"  # a developer's .env must not decide the outcome
    empty.write_text("")
    return subprocess.run(
        [*compose, "--env-file", str(empty), "-f", str(ROOT / "docker-compose.yml"), "--project-directory", str(ROOT),
         "config", "--format", "json"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **env},
        capture_output=True, text=True, timeout=120,
    )


def test_docker_compose_config_succeeds_and_passes_the_settings_through(tmp_path: Path) -> None:
    compose = _compose()
    done = _config(
        compose, tmp_path, SECRET_KEY="k" * 50, POSTGRES_PASSWORD="pw", RAG_OIDC_ISSUER="https://idp.example.com/realms/acme",
        RAG_PASSWORD_LOGIN="0",
    )
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "gpu-worker"} <= set(services)
    web = services["web"]["environment"]
    assert web["RAG_PRODUCTION"] == "1" and web["SECRET_KEY"] == "k" * 50 and web["RAG_HF_OFFLINE"] == "1"
    assert web["RAG_OIDC_ISSUER"] == "https://idp.example.com/realms/acme" and web["RAG_PASSWORD_LOGIN"] == "0"
    assert json.loads(web["RAG_LLM_OPTIONS"]) == {"model": "/models/Mistral-7B-Instruct-v0.2"}
    assert web.get("RAG_OIDC_CLIENT_SECRET") in (None, "")  # unset stays unset: the settings' default applies

    missing = _config(compose, tmp_path, POSTGRES_PASSWORD="pw")
    assert missing.returncode != 0 and "SECRET_KEY" in missing.stderr
