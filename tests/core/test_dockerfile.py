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


def test_the_dockerfile_builds_on_the_base_image_for_the_login_user_uid_and_port() -> None:
    lines = spec(base_image="reg.local:5000/cuda:12", user="alice", uid=1234, sshd_port=2200).dockerfile().splitlines()
    assert lines[1] == "FROM reg.local:5000/cuda:12"
    assert ("      if getent passwd 1234 >/dev/null; then useradd -m -s /bin/bash alice; \\\n"
            "      else useradd -m -s /bin/bash -u 1234 alice; fi; \\") in "\n".join(lines)
    assert "    mkdir -p /home/alice/workspace /etc/devagent; \\" in lines
    assert "    chown alice: /home/alice/workspace" in lines
    assert lines[-5:] == ["", "USER alice", "WORKDIR /home/alice/workspace", "EXPOSE 2200", 'CMD ["devagent", "agent"]']
    assert "ENV DEVAGENT_WORKSPACE=/home/alice/workspace" in lines


def test_the_dockerfile_checks_each_sshd_profile_with_sshd_itself() -> None:
    lines = spec().dockerfile().splitlines()
    check = ("    devagent sshd-config --profile strict --user dev --port 2222 > /etc/devagent/sshd_config.strict"
             " && /usr/sbin/sshd -t -f /etc/devagent/sshd_config.strict -h /tmp/devagent-testkey"
             " && devagent sshd-config --profile compat --user dev --port 2222 > /etc/devagent/sshd_config.compat"
             " && /usr/sbin/sshd -t -f /etc/devagent/sshd_config.compat -h /tmp/devagent-testkey; \\")
    assert check in lines
    assert "    chmod 644 /etc/devagent/sshd_config.*" in lines


def test_the_tag_is_twelve_hex_digits_of_the_content_hash() -> None:
    tag = spec().tag
    assert tag == f"devagent/env:{spec().content_hash()}"
    digits = tag.removeprefix("devagent/env:")
    assert len(digits) == 12 and set(digits) <= set("0123456789abcdef")


def test_the_images_labels_name_its_base_user_version_and_format() -> None:
    assert spec().labels("0.9.0") == {"devagent.managed": "true", "devagent.base-image": "devagent-base:bookworm",
                                      "devagent.user": "dev", "devagent.version": "0.9.0",
                                      "devagent.image-format": "1"}
    pinned = spec().labels("0.9.0", base_digest="sha256:" + "a" * 64)
    assert pinned["devagent.base-digest"] == "sha256:" + "a" * 64
    assert "devagent.base-digest" not in spec().labels("0.9.0", base_digest="")
