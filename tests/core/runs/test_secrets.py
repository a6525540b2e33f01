"""What looks like a secret: names, values, command lines, files, output."""

from __future__ import annotations

import pytest

from devagent.core.runs.run_environment import allowed_env
from devagent.core.runs.secrets import (
    looks_secret,
    redact_argv,
    redact_mapping,
    scrub,
    secret_file,
    secret_name,
    secret_text,
    secret_value,
    secrets_in,
)

HF = "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"  # the shape of a Hugging Face token: hf_ and 34 letters
LOWER36 = "q7w8e9r0t1y2u3i4o5p6a7s8d9f0g1h2j3k4"  # a 36-character lower-case token
LETTERS36 = "qwhzkxbnvmtrplsdfgjcyueioaqwhzkxbnvm"  # 36 lower-case letters, no digit


class TestTheIssuesExamples:
    """Issue 10, item 7: each example that passed the redaction before."""

    @pytest.mark.parametrize("name", ["NCCL_IB_PASSWD2", "TORCH_HUB_PASS", "TORCH_DB_PWD"])
    def test_environment_names(self, name: str) -> None:
        assert allowed_env({name: "hunter2"}) == {name: "‹redacted›"}

    @pytest.mark.parametrize("value", ["user:pw@h", LOWER36, LETTERS36])
    def test_environment_values(self, value: str) -> None:
        assert allowed_env({"MASTER_ADDR": value, "TORCH_X": value}) == {"MASTER_ADDR": "‹redacted›",
                                                                        "TORCH_X": "‹redacted›"}

    def test_the_command_line(self) -> None:
        argv = ["python", "train.py", f"--token={HF}", "--api-key", "X", "--password", "pw", "--lr", "3e-4"]
        assert redact_argv(argv) == ["python", "train.py", "--token=‹redacted›", "--api-key", "‹redacted›",
                                     "--password", "‹redacted›", "--lr", "3e-4"]

    def test_hyperparameters(self) -> None:
        assert redact_mapping({"token": HF, "api_key": "X", "lr": "3e-4"}) == {
            "token": "‹redacted›", "api_key": "‹redacted›", "lr": "3e-4"}


class TestNames:
    @pytest.mark.parametrize("name", [
        "HF_TOKEN", "--hf-token", "hfToken", "HUGGINGFACE_TOKEN", "--token", "github_token", "api_key", "--apiKey",
        "--apikey", "OPENAI_API_KEY", "aws_secret_access_key", "--client-secret", "db_password", "DBPASSWORD",
        "passwd", "--pass", "TORCH_DB_PWD", "private_key", "--key", "SSH_KEY", "credentials", "session_cookie",
        "Authorization", "bearer", "NCCL_AUTH_TOKEN", "use_auth_token",
    ])
    def test_secret_names(self, name: str) -> None:
        assert secret_name(name)

    @pytest.mark.parametrize("name", [
        "max_tokens", "--max-new-tokens", "num_tokens", "eos_token", "pad_token", "--bos-token", "special_tokens",
        "tokenizer", "TOKENIZERS_PARALLELISM", "token_dropout", "tokens_per_batch", "sort_key", "--monitor-key",
        "key_dim", "num_keys", "cache_key", "passes", "PWD", "OLDPWD", "TORCH_MONKEY_PATCH", "NCCL_KEYRING_MODE",
        "compass", "keyframe_interval",
    ])
    def test_ml_vocabulary_is_no_secret(self, name: str) -> None:
        assert not secret_name(name)


class TestValues:
    @pytest.mark.parametrize("value", [
        HF, "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2, "github_pat_11ABCDEFG0123456789_abcdefghij",
        "sk-proj-Abc123Def456Ghi789", "sk-ant-api03-Abc123Def456Ghi789Jkl", "xoxb-123456789012-abcdefABCDEF",
        "AKIAIOSFODNN7EXAMPLE", "glpat-abcdefghij0123456789",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "-----BEGIN OPENSSH PRIVATE KEY-----", "postgres://user:pw@db:5432/x", "user:pw@h",
        "https://oauth2:glpat-abcdefghij0123456789@gitlab.example/x.git", LOWER36, LETTERS36, LOWER36.upper(),
        "3f2a9c1e" * 5, "Bearer eyJhbGciOiJIUzI1NiJ9aBcDeFgHiJkLmNoPqRsTuVwXyZ012345",
    ])
    def test_credentials(self, value: str) -> None:
        assert secret_value(value)

    @pytest.mark.parametrize("value", [
        "/workspace/outputs/2024-11-27_14-02-59/checkpoints", "/home/Ana/Projects2024/MyModelCheckpoints/v1",
        "b1ee1ba9-58fe-44f5-a572-4966b6e83c38", "expandable_segments:True,max_split_size_mb:128",
        "bert-large-uncased-whole-word-masking-finetuned-squad", "bertlargeuncasedwholewordmaskingfinetunedsquad",
        "checkpoint20241127epoch10step5000", "git@github.com:org/repo.git", "https://github.com/org/repo",
        "sk-estimator-doc-link-fitted-container", "disk-usage-monitoring-tool-for-servers", "hf_hub_download",
        "ana@example.com", "10.0.0.1:29500",
    ])
    def test_ordinary_values(self, value: str) -> None:
        assert not secret_value(value)

    @pytest.mark.parametrize("value", ["", "True", "false", "None", " null "])
    def test_booleans_and_empty_values_are_no_secret_even_under_a_secret_name(self, value: str) -> None:
        assert not looks_secret("use_auth_token", value)


class TestCommandLines:
    def test_flag_names_stay_and_values_go(self) -> None:
        assert redact_argv(["t.py", "--hf_token", HF, "--private", "--epochs", "3", "--db=postgres://u:p@h/x"]) == [
            "t.py", "--hf_token", "‹redacted›", "--private", "--epochs", "3", "--db=‹redacted›"]

    def test_a_credential_is_redacted_wherever_it_stands(self) -> None:
        assert redact_argv(["env", f"X={HF}", "python", "t.py", HF, "-t", HF]) == [
            "env", "X=‹redacted›", "python", "t.py", "‹redacted›", "-t", "‹redacted›"]

    def test_a_secret_flag_followed_by_another_flag_takes_no_value(self) -> None:
        assert redact_argv(["t.py", "--password", "--seed", "0", "--token", "-1"]) == [
            "t.py", "--password", "--seed", "0", "--token", "‹redacted›"]

    def test_hyperparameters_that_are_ml_vocabulary_stay(self) -> None:
        argv = ["t.py", "--max_tokens", "2048", "--eos-token", "</s>", "--sort-key", "val_loss", "--tokenizer", "gpt2"]
        assert redact_argv(argv) == argv


class TestFiles:
    @pytest.mark.parametrize("path", [
        ".env", ".env.local", "config/prod.env", ".envrc", "credentials.json", ".aws/credentials", "secrets.yaml",
        "client_secret_123.apps.googleusercontent.com.json", "id_rsa", "id_ed25519.pub", "deploy/id_deploy",
        "server.pem", "tls.key", "cert.p12", "cert.PFX", ".netrc", ".pgpass", "vault.kdbx", "deploy_rsa",
    ])
    def test_secret_names(self, path: str) -> None:
        assert secret_file(path)

    @pytest.mark.parametrize("path", ["train.py", "id_to_label.py", "keys.py", "tokenizer.json", "environment.yml",
                                      "envs/README.md", "key_frames.py"])
    def test_ordinary_names(self, path: str) -> None:
        assert not secret_file(path)

    @pytest.mark.parametrize("text", [
        f"HF_TOKEN={HF}\n", "export WANDB_API_KEY=0123456789abcdef\n", 'db:\n  password: "s3cr3t-pass"\n',
        '{"api_key": "abcd1234efgh"}', 'client = Client(api_key="abcd1234efgh")\n',
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n", "url = https://bob:hunter22@db.example/x\n",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n",
    ])
    def test_secret_content(self, text: str) -> None:
        assert secret_text(text)

    @pytest.mark.parametrize("text", [
        "token = tokenizer(text)\n", 'eos_token = "<|endoftext|>"\n', 'key = "val_accuracy"\n',
        "api_key = os.environ['API_KEY']\n", "HF_TOKEN=\n", "TOKEN=${HF_TOKEN}\n", "password: <your password>\n",
        '{"image/png": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5E'
        'rkJggg=="}',
        "torch==2.8.0 --hash=sha256:3f2a9c1e3f2a9c1e3f2a9c1e3f2a9c1e3f2a9c1e3f2a9c1e3f2a9c1e3f2a9c1e\n",
        '<div class="sk-estimator-doc-link fitted">', "password_min_length = 12\n",
    ])
    def test_ordinary_content(self, text: str) -> None:
        assert not secret_text(text)


def test_output_is_scrubbed_of_the_secrets_found_and_of_token_shapes() -> None:
    secrets = secrets_in(["python", "t.py", "--password", "hunter22", "--lr", "0.1"],
                         {"HF_TOKEN": "tok-abc-123", "PWD": "/home/dev/workspace", "PATH": "/usr/bin"})
    assert secrets == {"hunter22", "tok-abc-123"}
    line = "Namespace(password='hunter22', lr=0.1) tok-abc-123 in /home/dev/workspace, " + HF
    assert scrub(line, secrets) == ("Namespace(password='‹redacted›', lr=0.1) ‹redacted› in /home/dev/workspace, "
                                    "‹redacted›")


class TestRandomLookingRuns:
    """A run of 32+ letters and digits: where each rule of the random-looking judgement starts and stops."""

    @pytest.mark.parametrize("value", [
        "AbCdEfGhIjKlMnOpQrStUvW123456789",  # upper, lower and digits (the letters alone read too few to judge)
        "ABCDEF0123456789ABCDEF0123456789", "abcdef0123456789abcdef0123456789",  # hex, either case
        "/data/AbCdEfGhIjKlMnOpQrStUvW123456789",  # a path's piece of exactly 32
        "model1checkpoint22version333best",  # letters and digits alternate 6 times
        "bcdfghjklmnpqrstvwxzbcdf12345678",  # 24 letters, no vowel
        "bcdfagklmepqrsitvwxobcdfagklmeab",  # vowels under 30 %, no long consonant run
        "abacadabracadabrabcdfghabracadab",  # enough vowels, but 6 consonants in a row
    ])
    def test_random_looking(self, value: str) -> None:
        assert secret_value(value)

    @pytest.mark.parametrize("value", [
        "/data/AbCdEfGhIjKlMnOpQrStUvW12345678",  # the path's piece is 31 long
        "modelcheckpoint1version22best333",  # 5 alternations
        "bcdfghjklmnpqrstvwxzbcd123456789",  # 23 letters: too few to judge by vowels
        "tnatnatnatnatnatnatnatnatnatnp12",  # vowels exactly 30 %
        "abacadabracadabrabcdfgabracadabr",  # 5 consonants in a row
        "aeiouyaeiouyaeiouyaeiouyaeiouy12",  # no consonant at all
    ])
    def test_words_run_together(self, value: str) -> None:
        assert not secret_value(value)


class TestFileAssignments:
    @pytest.mark.parametrize("text", [
        "API_KEY=${HF_TOKEN}\n", "API_KEY=<your-key>\n", "API_KEY={{api_key}}\n", "API_KEY=%(api_key)s\n",
        "API_KEY=[REDACTED]\n", "API_KEY=(not-set)\n",  # placeholders
        "API_KEY=abcabcab\n",  # 3 different characters
        'token: "abcd1234efgh"\n', 'tokens = "abcd1234efgh"\n', "keys: abcd1234efgh\n",  # a bare token or key
    ])
    def test_placeholders_and_bare_ambiguous_names_are_none(self, text: str) -> None:
        assert not secret_text(text)

    @pytest.mark.parametrize("text", [
        "API_KEY=abcdabcd\n",  # 4 different characters are enough
        "api_token: abcd1234efgh\n", "password: s3cr3t-pw\n", "'password': s3cr3t-pw\n",
        '"password": s3cr3t-pw\n', "PASS=abcd1234\n",  # the name's own letters are never judged as a value
    ])
    def test_a_credential_assigned_to_a_secret_name(self, text: str) -> None:
        assert secret_text(text)


class TestCommandLineEdges:
    def test_the_first_word_is_judged_like_any_other(self) -> None:
        assert redact_argv(["HF_TOKEN=abc", "python"]) == ["HF_TOKEN=‹redacted›", "python"]
        assert redact_argv(["--token=abc"]) == ["--token=‹redacted›"]

    def test_a_flag_with_its_value_after_a_secret_flag_is_no_value_of_it(self) -> None:
        assert redact_argv(["t.py", "--api-key", "--lr=3e-4", "--api-key", "--define=x=1"]) == [
            "t.py", "--api-key", "--lr=3e-4", "--api-key", "--define=x=1"]

    def test_a_boolean_or_empty_value_of_a_secret_flag_stays(self) -> None:
        assert redact_argv(["t.py", "--hf-token", "false", "--token", ""]) == [
            "t.py", "--hf-token", "false", "--token", ""]

    def test_only_the_first_equals_sign_ends_the_name(self) -> None:
        assert redact_argv(["--token=dGVzdA==", "--lr=3e-4", "FOO=a=b"]) == [
            "--token=‹redacted›", "--lr=3e-4", "FOO=a=b"]
        assert secrets_in(["t.py", "--token=dGVzdA==", "--password", "hunter22"], {}) == {
            "--token=dGVzdA==", "dGVzdA==", "hunter22"}


def test_scrub_replaces_the_longest_secret_first_and_none_under_4_characters() -> None:
    assert scrub("a mytoken b", ["token", "mytoken"]) == "a ‹redacted› b"
    assert scrub("pw=abcd abc", ["abcd", "abc"]) == "pw=‹redacted› abc"


@pytest.mark.parametrize("path", ["a/b/id_deploy", "secrets/", "config/.env/"])
def test_the_last_part_of_a_path_names_the_file_a_trailing_slash_too(path: str) -> None:
    assert secret_file(path)
