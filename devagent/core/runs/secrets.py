"""What looks like a secret, wherever a run section might show it: a name with its value (an environment variable,
a hyperparameter), a command line, a file in the uncommitted diff, a line of output.

One detection for all of them, so that ``--token=hf_…`` on the command line, ``HF_TOKEN`` in the environment and a
``.env`` in the work tree are judged alike:

- **by name**: a word of the name says so (``PASSWORD``, ``SECRET``, ``PASSWD2``, ``PWD``, ``apiKey``…); ``TOKEN``
  and ``KEY`` only as the name's last word and not after a word that makes them ML vocabulary (``max_tokens``,
  ``eos_token``, ``sort_key`` are hyperparameters, ``hf_token`` and ``api_key`` are not);
- **by value**: a known token shape (``hf_…``, ``ghp_…``, ``sk-…``, ``AKIA…``, ``glpat-…``, ``xoxb-…``, JWTs…), a
  private key block, credentials in a URL (``scheme://user:pw@host``, or a whole value ``user:pw@host``), or a
  run of 32+ letters and digits that looks random;
- **files** by name (``.env*``, ``*.pem``, ``*.key``, ``id_rsa``, ``credentials*``…) or by content: the strong
  shapes above and assignments such as ``API_KEY=…`` or ``password: "…"`` — not random-looking strings alone,
  which base64 images in notebooks and hashes in lock files are full of.

Booleans and empty values are never secrets (``--private``, ``use_auth_token=True``). Pure: text in, verdicts out.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase

REDACTED = "‹redacted›"

# A word of a name that makes its value a secret, whatever else the name says.
_STRONG_WORDS = frozenset({
    "SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD", "PASSPHRASE", "PASSCODE", "PASS", "PWD",
    "APIKEY", "APITOKEN", "AUTHTOKEN", "ACCESSTOKEN", "ACCESSKEY", "SECRETKEY", "PRIVATEKEY", "HFTOKEN",
    "CREDENTIAL", "CREDENTIALS", "CREDS", "COOKIE", "COOKIES", "AUTH", "AUTHORIZATION", "BEARER", "PRIVATE",
})
# Inside a longer word these still mean a secret (DBPASSWORD, CLIENTSECRET).
_STRONG_PARTS = ("PASSWORD", "PASSWD", "SECRET", "CREDENTIAL")
# TOKEN and KEY are ML vocabulary as often as they are credentials: they count as the last word of a name, and
# not after one of these.
_AMBIGUOUS_WORDS = frozenset({"TOKEN", "TOKENS", "KEY", "KEYS"})
_ML_QUALIFIERS = frozenset({
    "MAX", "MIN", "NUM", "N", "TOTAL", "EXTRA", "NEW", "ADDED", "SPECIAL", "EOS", "BOS", "PAD", "UNK", "SEP",
    "CLS", "MASK", "START", "END", "STOP", "EOT", "BOT", "EOD", "IMAGE", "IMG", "VISION", "AUDIO", "VIDEO",
    "TEXT", "PREFIX", "SUFFIX", "DECODER", "ENCODER", "GLOBAL", "REGISTER", "DUMMY", "PLACEHOLDER", "SORT",
    "METRIC", "MONITOR", "CACHE", "LABEL", "INPUT", "OUTPUT", "TARGET", "DATA", "DATASET", "BATCH", "GROUP",
    "SPLIT", "COLUMN", "FIELD", "RNG", "PRNG", "SEED", "PRIMARY", "LOSS", "EVAL", "LOG", "QUERY", "VALUE",
    "DICT", "STATE", "HASH", "SHARD", "PARTITION", "INDEX", "SAMPLE", "CONTEXT", "PROMPT", "RESPONSE",
})
# Names that hold no secret although a word says so: the shell's working folders.
_NOT_SECRET_NAMES = frozenset({"PWD", "OLDPWD"})
_HARMLESS_VALUES = frozenset({"", "true", "false", "none", "null"})

# Shapes that are credentials wherever they appear, in a value, a file or the output. Each starts at a word
# boundary, so `disk-usage` holds no `sk-` key.
_B = r"(?<![A-Za-z0-9_-])"
_STRONG_RE = re.compile("|".join((
    _B + r"hf_[A-Za-z0-9]{20,}",  # Hugging Face
    _B + r"api_org_[A-Za-z0-9]{20,}",
    _B + r"gh[pousr]_[A-Za-z0-9]{16,}",  # GitHub
    _B + r"github_pat_[A-Za-z0-9_]{22,}",
    _B + r"glpat-[A-Za-z0-9_-]{20,}",  # GitLab
    _B + r"xox[abposr]-[A-Za-z0-9-]{10,}",  # Slack
    _B + r"(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])",  # AWS access key id
    _B + r"AIza[0-9A-Za-z_-]{35}",  # Google API key
    _B + r"npm_[A-Za-z0-9]{36}",
    _B + r"pypi-AgE[A-Za-z0-9_-]{50,}",
    _B + r"dckr_pat_[A-Za-z0-9_-]{20,}",
    _B + r"r8_[A-Za-z0-9]{30,}",  # Replicate
    _B + r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}",  # Stripe
    # OpenAI, Anthropic: mixed case and digits, so that CSS classes such as `sk-estimator-doc-link` are none
    _B + r"sk-(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[a-z])(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{20,}",
    _B + r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # a JWT
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]+:[^\s/@]+@",  # scheme://user:password@
)))
_USERINFO_VALUE_RE = re.compile(r"[^\s/:@]+:[^\s/@]+@[^\s@]+")  # a whole value user:password@host
_LONG_RUN_RE = re.compile(r"[A-Za-z0-9+/=_-]{32,}")
_ALNUM_RUN_RE = re.compile(r"[A-Za-z0-9]{32,}")

# Assignments in a file: NAME=value (.env, shell), name: value (YAML), name = "value" / "name": "value" (code,
# JSON). The name must look secret and the value like a credential (not `${VAR}`, `<token>` or `xxxxxxxx`).
_ASSIGNMENT_RES = (
    re.compile(r"^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.-]*)=([\"']?)([^\s\"'#]{8,})\2[ \t]*(?:#.*)?$",
               re.MULTILINE),
    re.compile(r"^[ \t]*([\"']?)([A-Za-z_][A-Za-z0-9_.-]*)\1[ \t]*:[ \t]+([\"']?)([^\s\"'#]{8,})\3[ \t]*,?[ \t]*$",
               re.MULTILINE),
    re.compile(r"([A-Za-z_][A-Za-z0-9_]*)[\"']?[ \t]*[:=][ \t]*[\"']([^\"'\s]{8,})[\"']"),
)

SECRET_FILE_PATTERNS: tuple[str, ...] = (
    ".env", ".env.*", "*.env", ".envrc", ".netrc", "_netrc", ".pgpass", ".npmrc", ".pypirc", ".git-credentials",
    ".htpasswd", ".dockercfg", "credentials*", "*credentials.json", "secrets*", "secret.*", "client_secret*",
    "service-account*.json", "service_account*.json", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore",
    "*.kdbx", "*.ppk", "*.ovpn", "*_rsa", "*_dsa", "*_ecdsa", "*_ed25519",
)
"""File names (matched case-insensitively against the last part of the path) whose content is presumed secret,
besides ``id_*`` without an extension (ssh keys: ``id_rsa``, ``id_ed25519``, ``id_deploy``, and their ``.pub``)."""


def name_words(name: str) -> list[str]:
    """The words of a variable or flag name, upper case, trailing digits dropped.

    >>> name_words("--hfToken"), name_words("NCCL_IB_PASSWD2"), name_words("db.password-2")
    (['HF', 'TOKEN'], ['NCCL', 'IB', 'PASSWD'], ['DB', 'PASSWORD'])
    """
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    words = (word.upper().rstrip("0123456789") for word in re.split(r"[^A-Za-z0-9]+|\s", spaced))
    return [word for word in words if word]


def secret_name(name: str) -> bool:
    """Whether a variable, flag or hyperparameter named NAME holds a secret.

    >>> [secret_name(n) for n in ("HF_TOKEN", "--api-key", "TORCH_DB_PWD", "TORCH_HUB_PASS", "clientSecret")]
    [True, True, True, True, True]
    >>> [secret_name(n) for n in ("max_tokens", "eos_token", "sort_key", "key_dim", "TORCH_MONKEY_PATCH", "PWD")]
    [False, False, False, False, False, False]
    """
    if name.strip("-").upper() in _NOT_SECRET_NAMES:
        return False
    words = name_words(name)
    if any(word in _STRONG_WORDS or any(part in word for part in _STRONG_PARTS) for word in words):
        return True
    if words and words[-1] in _AMBIGUOUS_WORDS:
        return len(words) == 1 or words[-2] not in _ML_QUALIFIERS
    return False


def secret_value(value: str) -> bool:
    """Whether VALUE looks like a credential whatever its name: a known token shape, a private key, credentials
    in a URL, or a long random-looking run of letters and digits.

    >>> [secret_value(v) for v in ("hf_" + "a1" * 10, "user:pw@h", "https://u:p@host/x", "k3j5h6g7f8d9s0a1q2w3")]
    [True, True, True, False]
    >>> secret_value("k3j5h6g7f8d9s0a1q2w3e4r5t6y7u8i9"), secret_value("b1ee1ba9-58fe-44f5-a572-4966b6e83c38")
    (True, False)
    >>> secret_value("/home/Ana/Projects2024/MyModelCheckpoints/v1"), secret_value("expandable_segments:True")
    (False, False)
    """
    if _STRONG_RE.search(value) or _USERINFO_VALUE_RE.fullmatch(value.strip()):
        return True
    if any(_random_looking(m.group()) for m in _LONG_RUN_RE.finditer(value)):
        return True
    return any(_unreadable(m.group()) for m in _ALNUM_RUN_RE.finditer(value))


def looks_secret(name: str, value: str) -> bool:
    """Whether NAME=VALUE holds a secret, by its name or its value; an empty or boolean value never does.

    >>> looks_secret("HF_TOKEN", "x"), looks_secret("MONKEY_COUNT", "3"), looks_secret("SEED", "hf_" + "a1" * 10)
    (True, False, True)
    >>> looks_secret("use_auth_token", "True"), looks_secret("TORCH_HOME", "/home/Ana/Projects2024/Checkpoints")
    (False, False)
    """
    if value.strip().lower() in _HARMLESS_VALUES:
        return False
    return secret_name(name) or secret_value(value)


def redact_mapping(values: Mapping[str, str]) -> dict[str, str]:
    """VALUES with each secret value replaced by ``‹redacted›``, in the same order.

    >>> redact_mapping({"lr": "3e-4", "hf_token": "abc", "max_tokens": "2048"})
    {'lr': '3e-4', 'hf_token': '‹redacted›', 'max_tokens': '2048'}
    """
    return {name: REDACTED if looks_secret(name, value) else value for name, value in values.items()}


_FLAG_RE = re.compile(r"--?[A-Za-z][A-Za-z0-9_.-]*")
_ASSIGN_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def redact_argv(argv: Sequence[str]) -> list[str]:
    """ARGV with every secret replaced by ``‹redacted›``: the value of a flag whose name is secret (``--token=X``,
    ``--api-key X``), the value of ``NAME=X`` where NAME is, and any word that looks like a credential itself.
    Flag names stay, so the command still reads as typed.

    >>> redact_argv(["python", "train.py", "--token=hf_x", "--api-key", "X", "--lr", "3e-4", "--private"])
    ['python', 'train.py', '--token=‹redacted›', '--api-key', '‹redacted›', '--lr', '3e-4', '--private']
    >>> redact_argv(["env", "HF_TOKEN=abc", "python", "t.py", "--db", "postgres://u:pw@db/x"])
    ['env', 'HF_TOKEN=‹redacted›', 'python', 't.py', '--db', '‹redacted›']
    """
    out: list[str] = []
    secret_flag: str | None = None  # the previous word, when it was a flag with a secret name and no value
    for word in argv:
        flag, value = secret_flag, word
        secret_flag = None
        if flag is not None and not (word.startswith("-") and _FLAG_RE.fullmatch(word.split("=", 1)[0])):
            out.append(REDACTED if looks_secret(flag, value) else word)
            continue
        name, eq, rest = word.partition("=")
        if eq and (_FLAG_RE.fullmatch(name) or _ASSIGN_NAME_RE.fullmatch(name)):
            out.append(f"{name}={REDACTED}" if looks_secret(name, rest) or secret_value(name) else word)
        elif _FLAG_RE.fullmatch(word):
            out.append(word)
            if secret_name(word):
                secret_flag = word
        else:
            out.append(REDACTED if secret_value(word) else word)
    return out


def secret_file(path: str) -> bool:
    """Whether a file is presumed to hold secrets by its name alone (see ``SECRET_FILE_PATTERNS``).

    >>> [secret_file(p) for p in (".env", "conf/.env.local", "deploy/id_ed25519", "certs/server.pem", "id_map.py")]
    [True, True, True, True, False]
    """
    base = path.rstrip("/").rsplit("/", 1)[-1].lower()
    if base.startswith("id_") and ("." not in base or base.endswith(".pub")):
        return True
    return any(fnmatchcase(base, pattern) for pattern in SECRET_FILE_PATTERNS)


def secret_text(text: str) -> bool:
    """Whether TEXT (a file's content, a diff) holds a credential: a known token shape, a private key, a URL with
    a password, or an assignment of a credential-like value to a secret name.

    >>> secret_text("HF_TOKEN=abcdefgh12\\n"), secret_text('db:\\n  password: "s3cr3t-pw"\\n')
    (True, True)
    >>> secret_text('tok = Tokenizer(eos_token="<|endoftext|>")\\nkey = row["key"]\\n'
    ...             '# pinned at 3f2a9c1e5d4b3a2f1e0d9c8b7a6f5e4d3c2b1a09\\n')
    False
    """
    if _STRONG_RE.search(text):
        return True
    for pattern in _ASSIGNMENT_RES:
        for match in pattern.finditer(text):
            groups = [g for g in match.groups() if g and g not in ("'", '"')]
            name, value = groups[0], groups[-1]
            if _credential_like(value) and _strong_name(name):
                return True
    return False


def scrub(text: str, secrets: Iterable[str]) -> str:
    """TEXT with each of SECRETS (exact strings, 4 characters or longer) and every strong token shape replaced by
    ``‹redacted›`` — for output, where a script may print its own arguments.

    >>> scrub("Namespace(token='abc123', lr=0.1) ghp_" + "x1" * 10, ["abc123"])
    "Namespace(token='‹redacted›', lr=0.1) ‹redacted›"
    """
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _STRONG_RE.sub(REDACTED, text)


def secrets_in(argv: Sequence[str], environ: Mapping[str, str]) -> set[str]:
    """The secret strings of a command line and an environment (any variable, not only the allow-listed ones):
    what ``redact_argv`` removes from ARGV, and each secret environment value. ``scrub`` takes them."""
    found = {word for word, shown in zip(argv, redact_argv(argv), strict=True) if word != shown}
    found |= {word.partition("=")[2] for word in found if "=" in word}
    found |= {value for name, value in environ.items() if looks_secret(name, value)}
    return found


def _strong_name(name: str) -> bool:
    """A secret name even on its own, as assignments in code go (``password``, but not a bare ``key``)."""
    return secret_name(name) and name_words(name) not in (["TOKEN"], ["TOKENS"], ["KEY"], ["KEYS"])


def _credential_like(value: str) -> bool:
    """Not a placeholder: no `${VAR}`, `<token>`, `{{ x }}`, `%(x)s`, and at least 4 different characters."""
    return value[:1] not in ("$", "<", "{", "%", "[", "(") and len(set(value)) >= 4


def _random_looking(token: str) -> bool:
    """A long run that mixes upper case, lower case and digits (or is long hex): how API keys look. A path's
    pieces are judged one by one."""
    if token.startswith("/"):
        return any(len(piece) >= 32 and _random_looking(piece) for piece in token.split("/"))
    has_upper = any(c.isupper() for c in token)
    has_lower = any(c.islower() for c in token)
    has_digit = any(c.isdigit() for c in token)
    hexadecimal = re.fullmatch(r"[0-9a-fA-F]+", token) is not None and has_digit
    return (has_upper and has_lower and has_digit) or hexadecimal


def _unreadable(run: str) -> bool:
    """A run of 32+ letters and digits in one case that is no words: letters and digits alternate often, or the
    letters have too few vowels or too long a run of consonants to be words run together (a random lower-case
    run of 36 is caught 97 times in 100; `bertlargeuncasedwholewordmasking` is not)."""
    transitions = sum(a.isdigit() != b.isdigit() for a, b in itertools.pairwise(run))
    if transitions >= 6:
        return True
    letters = [c for c in run.lower() if c.isalpha()]
    if len(letters) < 24:
        return False
    vowels = sum(c in "aeiou" for c in letters) / len(letters)
    consonant_run = max((len(m) for m in re.findall(r"[bcdfghjklmnpqrstvwxz]+", run.lower())), default=0)
    return vowels < 0.3 or consonant_run >= 6
