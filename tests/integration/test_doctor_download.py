"""doctor's download-tool check against real images: Remote-SSH's setup script downloads VS Code's server inside
the environment with curl or wget. The offline base image built before curl was added has neither (a warning that
says what each client does); an image with a `curl` on the PATH passes. The probe runs as doctor runs it, `sh -s`
with the script on stdin, here through `docker run` (what is judged does not depend on the login)."""

from __future__ import annotations

import io
import subprocess
from typing import Any

import pytest

from devagent.core import doctor_rules as d
from tests.integration.conftest import BASE_IMAGE, RUN_PREFIX

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def download_check(image: str) -> d.Check:
    done = subprocess.run(["docker", "run", "--rm", "-i", "--network", "none", "--entrypoint", "sh", image, "-s"],
                          input=d.PROBE_SCRIPT, capture_output=True, text=True, timeout=120, check=False)
    values = d.parse_probe(done.stdout)
    assert "download" in values, done.stdout + done.stderr
    return {c.name: c for c in d.container_checks(values, d.Environment("exp"))}[d.DOWNLOAD]


def test_an_image_without_curl_or_wget_is_a_warning_and_one_with_curl_passes(docker_client: Any) -> None:
    base_has_one = subprocess.run(["docker", "run", "--rm", "--entrypoint", "sh", BASE_IMAGE, "-c",
                                   "command -v curl || command -v wget"], capture_output=True, check=False)
    tag = f"{RUN_PREFIX}with-curl:1"
    dockerfile = f"FROM {BASE_IMAGE}\nRUN printf '#!/bin/sh\\nexit 0\\n' > /usr/local/bin/curl && " \
        "chmod 755 /usr/local/bin/curl\n"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, network_mode="none")
    try:
        with_curl = download_check(tag)
        assert (with_curl.ok, with_curl.detail) == (
            True, "/usr/local/bin/curl (Remote-SSH's setup script downloads VS Code's server with it)")
        without = download_check(BASE_IMAGE)
        if base_has_one.returncode == 0:  # the base image was rebuilt with curl: nothing to warn of
            assert without.ok is True
        else:
            assert (without.ok, without.warning) == (None, True)
            assert without.detail.startswith("neither curl nor wget in the image: ")
    finally:
        docker_client.images.remove(tag, force=True)
