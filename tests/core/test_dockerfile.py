"""The derived image's Dockerfile and its content-hash tag."""

from __future__ import annotations

from devagent.core.dockerfile import ImageSpec


def spec(**overrides: object) -> ImageSpec:
    values: dict[str, object] = dict(base_image="devagent-base:bookworm", base_id="sha256:abc", user="dev",
                                     uid=1000, sshd_port=2222, payload=(("devagent==0.1.0", "11"),))
    values.update(overrides)
    return ImageSpec(**values)  # type: ignore[arg-type]


def test_an_unchanged_spec_gives_the_same_tag_and_any_change_a_new_one() -> None:
    assert spec().tag == spec().tag
    assert spec().tag.startswith("devagent/env:")
    others = [spec(base_id="sha256:def"), spec(user="alice"), spec(uid=1001),
              spec(payload=(("devagent==0.1.0", "22"),))]
    assert len({s.tag for s in others} | {spec().tag}) == 5


def test_the_dockerfile_installs_from_carried_wheels_only_and_runs_the_agent_as_the_user() -> None:
    text = spec().dockerfile()
    assert "--no-index" in text and "--find-links /tmp/devagent-wheels" in text
    assert text.rstrip().endswith('CMD ["devagent", "agent"]')
    assert "\nUSER dev\n" in text
    assert "rm -f /etc/ssh/ssh_host_*" in text  # no host key baked into the image
