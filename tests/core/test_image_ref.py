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


@pytest.mark.parametrize("text", ["", "Team/Env", "Team/env", "reg.local:5000/Team/env", "env:", "env@sha256:abc",
                                  "env:v1@", "a//b", "env:-bad"])
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


def test_a_reference_without_a_tag_is_pinned_by_digest_alone() -> None:
    assert parse_image_ref("reg.local:5000/env").pinned(DIGEST) == f"reg.local:5000/env@{DIGEST}"
    assert parse_image_ref("reg.local:5000/env:v1").pinned(DIGEST) == f"reg.local:5000/env:v1@{DIGEST}"


@pytest.mark.parametrize("labels", [{}, {"devagent.managed": "true"}, {"devagent.user": "dev"},
                                    {"devagent.managed": "yes", "devagent.user": "dev"},
                                    {"devagent.managed": "true", "devagent.user": ""}])
def test_an_image_devagent_did_not_derive_is_refused(labels: dict[str, str]) -> None:
    with pytest.raises(DevagentError) as err:
        check_devagent_image("python:3.12", labels, version="0.1.0")
    assert (err.value.status, err.value.message) == (
        ExitStatus.USAGE, "python:3.12 is not a devagent image (it has no devagent.* labels)")
    assert err.value.hint == ("--image takes an image made by `devagent image build --tag REF --push`; to start "
                              "from any other image, pass it as --base-image")


def test_an_image_in_another_format_without_its_version_or_base_says_so() -> None:
    labels = {"devagent.managed": "true", "devagent.user": "dev", "devagent.image-format": "2"}
    with pytest.raises(DevagentError) as err:
        check_devagent_image("r/env:v1", labels, version="0.1.0")
    assert err.value.message == (f"r/env:v1 was made by devagent an unknown version in image format 2; devagent "
                                 f"0.1.0 starts images of format {IMAGE_FORMAT}")
    assert err.value.hint == "rebuild and push it with this devagent: devagent image build --base-image BASE " \
        "--tag REF --push"


LOGIN_HINT = ("log in with `docker login {where}` (devagent uses Docker's credentials, from $DOCKER_CONFIG or "
              "~/.docker/config.json, and never writes them)")
MISSING_HINT = "check the tag (devagent image build --tag {ref} --push makes it)"
SILENT_HINT = ("check its address and that it runs; a registry without TLS must be on 127.0.0.0/8 or in the "
               "engine's insecure-registries")
OTHER_HINT = "read the registry's answer above; `docker login` if it needs credentials"


@pytest.mark.parametrize(("ref", "said", "pushing", "message", "hint"), [
    ("r.local/env:v1", "unauthorized: authentication required", False,
     "the registry r.local refused the credentials for r.local/env:v1", LOGIN_HINT),
    ("r.local/env:v1", "Authentication Required", False,
     "the registry r.local refused the credentials for r.local/env:v1", LOGIN_HINT),
    ("r.local/env:v1", "denied: requested access to the resource is denied", True,
     "the registry r.local refused the credentials for r.local/env:v1", LOGIN_HINT),
    ("team/env:v1", "Get https://registry-1.docker.io/v2/: incorrect username or password", False,
     "the registry docker.io refused the credentials for team/env:v1", LOGIN_HINT),
    # Docker Hub says "denied … does not exist" for a missing repository as often as for a missing login.
    ("team/env:v1", "pull access denied for team/env, repository does not exist or may require 'docker login'",
     False, "the registry docker.io has no image team/env:v1", MISSING_HINT),
    ("team/env:v1", "push access denied, repository does not exist or may require 'docker login'", True,
     "the registry docker.io refused the credentials for team/env:v1", LOGIN_HINT),
    ("r.local/env:v1", "Error: image env:v1 Not Found", False, "the registry r.local has no image r.local/env:v1",
     MISSING_HINT),
    ("r.local/env:v1", "the repository does not exist", True, "the registry r.local has no image r.local/env:v1",
     MISSING_HINT),
    ("r.local/env:v1", "NAME UNKNOWN: repository name not known to registry", False,
     "the registry r.local has no image r.local/env:v1", MISSING_HINT),
    *[("r.local/env:v1", said, False, "the registry r.local does not answer", SILENT_HINT) for said in [
        "Connection Refused", "lookup r.local on 127.0.0.53:53: no such host",
        "net/http: request canceled (Client.Timeout)", "read tcp 10.0.0.1:5000: I/O timeout", "Dial TCP 10.0.0.1:5000",
        "connect: No route to host",
        "http: server gave HTTP response to HTTPS client", "connect: network is unreachable"]],
    ("r.local/env:v1", "toomanyrequests: slow down", False, "pulling r.local/env:v1 failed", OTHER_HINT),
    ("r.local/env:v1", "toomanyrequests: slow down", True, "pushing r.local/env:v1 failed", OTHER_HINT),
])
def test_each_registry_answer_is_named_with_its_fix(ref: str, said: str, pushing: bool, message: str,
                                                    hint: str) -> None:
    parsed = parse_image_ref(ref)
    err = registry_error(parsed, said, pushing=pushing)
    where = parsed.registry or "docker.io"
    assert (err.status, err.message, err.details) == (ExitStatus.REGISTRY, message, said)
    assert err.hint == hint.format(where=where, ref=ref)


def test_a_failure_the_engine_gave_no_words_for_has_no_details() -> None:
    err = registry_error(parse_image_ref("r.local/env:v1"), "", pushing=False)
    assert (err.message, err.details, err.hint) == ("pulling r.local/env:v1 failed", None, OTHER_HINT)


def test_a_server_that_cannot_reach_the_registry_is_told_with_the_engines_words() -> None:
    said = "dial tcp 127.0.0.1:5000: connect: connection refused"
    err = registry_error(parse_image_ref("127.0.0.1:5000/env:v1"), said, pushing=True, server="gpu-server")
    assert (err.status, err.details) == (ExitStatus.REGISTRY, said)
