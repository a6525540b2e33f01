"""Team image references, the devagent-image check, and what a registry's refusal is called."""

from __future__ import annotations

import pytest

from devagent.core.dockerfile import IMAGE_FORMAT, check_devagent_image, parse_image_ref, registry_error
from devagent.errors import DevagentError, ExitStatus

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(("text", "repository", "tag", "digest", "registry"), [
    ("reg.local:5000/team/env:v1", "reg.local:5000/team/env", "v1", None, "reg.local:5000"),
    (f"reg.local:5000/team/env@{DIGEST}", "reg.local:5000/team/env", None, DIGEST, "reg.local:5000"),
    (f"127.0.0.1:5000/env:v1@{DIGEST}", "127.0.0.1:5000/env", "v1", DIGEST, "127.0.0.1:5000"),
    ("localhost/env", "localhost/env", None, None, "localhost"),
    ("devagent/env:3f2a9c1d0e4b", "devagent/env", "3f2a9c1d0e4b", None, None),
    ("python", "python", None, None, None),
])
def test_references_are_read_as_docker_reads_them(text: str, repository: str, tag: str | None,
                                                  digest: str | None, registry: str | None) -> None:
    ref = parse_image_ref(text)
    assert (ref.repository, ref.tag, ref.digest, ref.registry) == (repository, tag, digest, registry)
    assert str(ref) == text


def test_a_digest_is_what_is_pulled_when_there_is_one() -> None:
    assert parse_image_ref(f"r.local:5000/env:v1@{DIGEST}").pull_ref == f"r.local:5000/env@{DIGEST}"
    assert parse_image_ref("r.local:5000/env").pull_ref == "r.local:5000/env:latest"


@pytest.mark.parametrize("text", ["", "Team/Env", "env:", "env@sha256:abc", "env:v1@", "a//b", "env:-bad"])
def test_malformed_references_are_usage_errors(text: str) -> None:
    with pytest.raises(DevagentError) as err:
        parse_image_ref(text)
    assert err.value.status == ExitStatus.USAGE
    assert err.value.message == f"--image: {text!r} is not an image reference"


def test_an_image_in_another_format_is_refused_with_the_rebuild_command() -> None:
    labels = {"devagent.managed": "true", "devagent.user": "dev", "devagent.image-format": "99",
              "devagent.version": "9.0", "devagent.base-image": "debian:12"}
    with pytest.raises(DevagentError) as err:
        check_devagent_image("r/env:v1", labels, version="0.1.0")
    assert err.value.status == ExitStatus.USAGE
    assert err.value.message == (f"r/env:v1 was made by devagent 9.0 in image format 99; devagent 0.1.0 starts "
                                 f"images of format {IMAGE_FORMAT}")
    assert err.value.hint == "rebuild and push it with this devagent: devagent image build --base-image debian:12 " \
        "--tag REF --push"
    check_devagent_image("r/env:v1", {**labels, "devagent.image-format": IMAGE_FORMAT}, version="0.1.0")
    del labels["devagent.image-format"]  # made before the label existed: format 1
    check_devagent_image("r/env:v1", labels, version="0.1.0")


@pytest.mark.parametrize(("said", "pushing", "message"), [
    ('Head "http://127.0.0.1:5000/v2/env/manifests/v1": no basic auth credentials', False,
     "the registry 127.0.0.1:5000 refused the credentials for 127.0.0.1:5000/env:v1"),
    ("unauthorized: authentication required", True,
     "the registry 127.0.0.1:5000 refused the credentials for 127.0.0.1:5000/env:v1"),
    ("manifest for 127.0.0.1:5000/env:v1 not found: manifest unknown: manifest unknown", False,
     "the registry 127.0.0.1:5000 has no image 127.0.0.1:5000/env:v1"),
    ('Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused', False,
     "the registry 127.0.0.1:5000 does not answer"),
    ("something else entirely", True, "pushing 127.0.0.1:5000/env:v1 failed"),
])
def test_a_registrys_refusal_is_named_for_what_it_is(said: str, pushing: bool, message: str) -> None:
    err = registry_error(parse_image_ref("127.0.0.1:5000/env:v1"), said, pushing=pushing)
    assert (err.status, err.message, err.details) == (ExitStatus.REGISTRY, message, said)


def test_through_a_server_the_login_is_on_this_machine_and_the_registry_is_dialled_from_the_server() -> None:
    ref = parse_image_ref("127.0.0.1:5000/env:v1")
    refused = registry_error(ref, "unauthorized: authentication required", pushing=True, server="gpu-server")
    assert (refused.status, refused.message) == (
        ExitStatus.REGISTRY, "the registry 127.0.0.1:5000 refused the credentials for 127.0.0.1:5000/env:v1")
    assert refused.hint == ("log in on this machine with `docker login 127.0.0.1:5000` (devagent hands this "
                            "machine's Docker credentials to gpu-server's engine for the push and pull, and never "
                            "writes them)")
    silent = registry_error(ref, "dial tcp 127.0.0.1:5000: connect: connection refused", pushing=False,
                            server="gpu-server")
    assert (silent.status, silent.message) == (ExitStatus.REGISTRY,
                                               "the registry 127.0.0.1:5000 does not answer gpu-server's engine")
    assert silent.hint == ("check its address as gpu-server sees it (127.0.0.1 there is gpu-server itself) and that "
                           "it runs; a registry without TLS must be on 127.0.0.0/8 or in that engine's "
                           "insecure-registries")
