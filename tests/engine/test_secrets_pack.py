"""The secrets pack: breadth, samples, checksum validators, placeholders, dev set.

Tokens are assembled at run time from their documented layouts, so this file
holds nothing a secret scanner would report (see tests/tokens.py).
"""

from __future__ import annotations

import base64
import json
import random
import string
import zlib
from functools import cache
from pathlib import Path

import pytest

from service.engine import Scanner, builtin_specs, compile_guardrail
from service.engine.compiler import CompiledGuardrail
from service.engine.pack import PACKS_DIR, load_pack_file
from service.engine.scanner import has_wide_repetition
from service.engine.validators import (
    VALIDATORS,
    is_basic_auth_credential,
    is_bearer_token,
    is_crc32_base62_token,
    is_generic_secret,
    is_password_value,
    is_prose_password,
    is_token_not_placeholder,
    is_unverified_crc32_token,
)
from service.types import Segment, Severity

_ALNUM = string.ascii_letters + string.digits
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_BASE32 = string.ascii_uppercase + "234567"
_HEX = "0123456789abcdef"
# Targets the lead set for the development set (see the report for the gap).
RECALL_TARGET = 0.95
HARD_NEGATIVE_TARGET = 0.10
# What the pack reaches today (358/424 and 27/127 on 2026-12-04): a drop
# below these is a regression.
RECALL_FLOOR = 0.844
HARD_NEGATIVE_CEILING = 0.213
# 16 negative_examples are word-for-word equal to examples of another rule in
# the same file (Slack, Vault, .NET config lines): they cannot be both right.
# Without them 12 of 111 negatives are flagged today.
CONTRADICTORY_NEGATIVES = 16
CONSISTENT_NEGATIVE_CEILING = 0.109


@cache
def _secrets() -> CompiledGuardrail:
    spec = next(spec for spec in builtin_specs() if spec.name == "secrets")
    return compile_guardrail(spec)


@cache
def _scanner() -> Scanner:
    return Scanner([_secrets()])


def _rule_ids(text: str) -> set[str]:
    result = _scanner().scan([Segment("text", text)], {"secrets"})
    return {finding.rule_id for finding in result.findings}


def _random(alphabet: str, size: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(size))


def _base62(number: int) -> str:
    digits = ""
    while number:
        number, remainder = divmod(number, 62)
        digits = _BASE62[remainder] + digits
    return digits.rjust(6, "0")


def crc32_token(prefix: str, seed: int = 3) -> str:
    """``prefix`` + 30 random base-62 characters + 6 of their CRC32 in base 62."""
    body = _random(_ALNUM, 30, seed)
    return prefix + body + _base62(zlib.crc32(body.encode()))


# The published constant key of Cisco's reversible "type 7" encoding.
_CISCO_TYPE7_KEY = "dsfd;kfoA,.iyewrkldJKDHSUBsgvca69834ncxv9873254k;fg87"


def cisco_type7(plain: str, seed: int) -> str:
    """``plain`` in Cisco type 7: two seed digits, then hex of each character
    XORed with the key from that offset."""
    key = _CISCO_TYPE7_KEY
    codes = (ord(c) ^ ord(key[(seed + i) % len(key)]) for i, c in enumerate(plain))
    return f"{seed:02d}" + "".join(f"{code:02X}" for code in codes)


def _flip(token: str, index: int) -> str:
    index %= len(token)
    char = token[index]
    return token[:index] + ("A" if char != "A" else "B") + token[index + 1 :]


# -- the pack as a whole -------------------------------------------------------


def test_pack_file_loads_and_compiles_its_samples():
    """secrets.yaml loads on its own: every must_match / must_not_match holds."""
    spec = load_pack_file(PACKS_DIR / "secrets.yaml", builtin=True)

    assert spec.name == "secrets"
    assert compile_guardrail(spec).rules


def test_pack_has_at_least_150_distinct_rules():
    """At least 150 rules; no two share an id, nor a pattern and validator."""
    rules = _secrets().rules
    shapes = {(rule.spec.pattern, rule.spec.validator) for rule in rules}

    assert len({rule.id for rule in rules}) == len(rules) >= 150
    assert len(shapes) == len(rules)


def test_every_rule_is_complete():
    """Each rule has samples both ways, a mask label, a severity and a gate."""
    for rule in _secrets().rules:
        spec = rule.spec
        assert spec.must_match and spec.must_not_match, spec.id
        label = spec.mask_label
        assert label.startswith("[") and label.endswith("]"), spec.id
        assert isinstance(spec.severity, Severity), spec.id
        assert spec.prefilter, spec.id


def test_costly_rules_stay_out_of_the_set():
    """Every counted repetition of 8+ has a prefilter, so it never joins the Set."""
    rules = _secrets().rules
    costly = [rule for rule in rules if has_wide_repetition(rule.regex.source)]

    assert costly
    assert all(rule.prefilter for rule in costly)


# -- checksum validators -------------------------------------------------------


@pytest.mark.parametrize("prefix", ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"])
def test_github_checksum_accepts_a_valid_token(prefix):
    """A GitHub token whose last six characters are the CRC32 of the rest passes."""
    assert VALIDATORS["github_checksum"](crc32_token(prefix))


@pytest.mark.parametrize("index", [4, 20, 33, -1])
def test_github_checksum_rejects_one_changed_character(index):
    """Changing one character of the body or of the checksum fails the check."""
    token = crc32_token("ghp_")

    assert not VALIDATORS["github_checksum"](_flip(token, index))


def test_npm_checksum_accepts_a_valid_token():
    """npm's ``npm_`` tokens use the same CRC32-in-base-62 layout."""
    assert VALIDATORS["npm_checksum"](crc32_token("npm_", seed=11))


def test_npm_checksum_rejects_one_changed_character():
    """One changed character breaks an npm token's checksum."""
    token = crc32_token("npm_", seed=11)

    assert not VALIDATORS["npm_checksum"](_flip(token, 10))


def test_crc32_checksum_rejects_wrong_lengths():
    """The body must be exactly 30 + 6 base-62 characters."""
    token = crc32_token("ghp_")

    assert not is_crc32_base62_token(token[:-1])
    assert not is_crc32_base62_token(token + "A")


def test_unverified_github_token_is_its_own_rule():
    """A well-formed token whose checksum fails is reported, by a separate rule."""
    valid = crc32_token("ghp_", seed=5)
    broken = _flip(valid, 12)

    assert _rule_ids(f"token {valid}") == {"github-pat-token"}
    assert _rule_ids(f"token {broken}") == {"github-token-unverified"}
    assert is_unverified_crc32_token(broken) and not is_unverified_crc32_token(valid)


# -- placeholders -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "OPENAI_API_KEY=sk-proj-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "api_key: <your-api-key>",
        "api_key=YOUR_API_KEY_HERE",
        "password = changeme",
        'password: "changeme"',
        "DB_PASSWORD=${DB_PASSWORD}",
        'password = "***************"',
        "TAVILY_API_KEY=tvly-" + "x" * 32,
        "GITHUB_TOKEN=ghp_" + "a" * 36,
        "token = process.env.TOKEN",
        "postgres://user:password@localhost/db",
        "secret: {{ .Values.secret }}",
        "SLACK_BOT_TOKEN=xoxb-0000000000-0000000000000-" + "x" * 24,
    ],
)
def test_placeholders_are_not_findings(text):
    """Documentation values in a real format or a real key are not secrets."""
    assert _rule_ids(text) == set()


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("aws_access_key_id = AKIA" + _random(_BASE32, 16, 1),
         "aws-access-key-id"),
        ("TAVILY_API_KEY=tvly-" + _random(_ALNUM, 32, 2), "tavily-api-key"),
        ("postgres://app:" + _random(_ALNUM, 14, 3) + "@db:5432/app",
         "postgres-url-password"),
        ('password = "' + _random(_ALNUM, 12, 4) + '"', "generic-password-quoted"),
    ],
)  # fmt: skip
def test_real_shaped_values_are_findings(text, rule_id):
    """The same keys with random values are reported by the expected rule."""
    assert rule_id in _rule_ids(text)


@pytest.mark.parametrize(
    "value",
    ["xxxxxxxxxxxxxxxx", "EXAMPLEKEY123456", "aaaaaaaaaaaaaaaa", "0123456789abcdef",
     "<your-key>"],
)  # fmt: skip
def test_token_validator_rejects_placeholders(value):
    """Runs, ascending runs, EXAMPLE and angle brackets are placeholders."""
    assert not is_token_not_placeholder(value)


def test_token_validator_accepts_random_tokens():
    """Random base-62 and hex strings pass."""
    assert is_token_not_placeholder(_random(_ALNUM, 40, 7))
    assert is_token_not_placeholder(_random("0123456789abcdef", 32, 8))


@pytest.mark.parametrize(
    "value", ["changeme", "<password>", "${DB_PASS}", "env.DB_PASSWORD", "DB_PASSWORD",
              "$Password", "%PASSWORD%", "get_password()", "string", "123", "***"]
)  # fmt: skip
def test_password_value_rejects_placeholders_and_references(value):
    """Placeholders, type names and variable references are not passwords."""
    assert not is_password_value(value)


@pytest.mark.parametrize(
    "value", ["Summer2024!", "whiteduke", "VMware1!", "s3cr3t-Pa55"]
)
def test_password_value_keeps_weak_human_passwords(value):
    """Short, low-entropy but literal passwords are still passwords."""
    assert is_password_value(value)


def test_generic_secret_rejects_words_and_fillers():
    """Snake-case words and ``a1b2c3d4`` fillers are not generic secrets."""
    assert not is_generic_secret("access_token_refresh")
    assert not is_generic_secret("px-api-a1b2c3d4-e5f6-g7h8-i8j0-k0l3m3n4o0p5")
    assert is_generic_secret(_random(_ALNUM, 32, 9))


def test_password_value_keeps_angle_characters_of_random_passwords():
    """A lone ``>`` or ``<`` is a character; only ``<name>`` is a placeholder."""
    assert is_password_value("k>qX" + _random(_ALNUM, 12, 12))
    assert is_password_value(_random(_ALNUM, 6, 13) + "<" + _random(_ALNUM, 6, 14))
    assert not is_password_value("user-<db password>")


def test_password_value_treats_only_calls_as_code():
    """``get_pw()`` and ``os.getenv("X")`` are code; a random value with a
    parenthesis (Django's SECRET_KEY alphabet has them) is a literal."""
    assert not is_password_value("get_pw()")
    assert not is_password_value('os.getenv("DB_PASS")')
    assert not is_password_value("+new Buffer(pw)")
    parenthesised = _random(_ALNUM, 10, 32) + "%n(" + _random(_ALNUM, 10, 33) + ")"
    assert is_password_value(parenthesised)


def test_password_value_keeps_a_leading_hash():
    """``#gets0me``-style literals are passwords; ``#{var}`` and ``#/ref`` are not."""
    assert is_password_value("#" + _random(_ALNUM, 9, 15))
    assert not is_password_value("#{datastore['DBPASSWORD']}")
    assert not is_password_value("#/components/secrets")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Tq7u8jzPde0I", True), ("Summer2024!", True), ("k3j9x0a8m2pq", True),
     ("incorrect", False), ("required", False), ("version2", False),
     ("12345678", False), ("hunter22", False)],
)  # fmt: skip
def test_prose_password_wants_a_chosen_looking_value(value, expected):
    """In a sentence the value is unquoted, so it must not read as a word."""
    assert is_prose_password(value) is expected


def test_bearer_token_allows_short_opaque_tokens_with_a_digit():
    """RFC 6750 sets no minimum length; short values need a digit, no reference."""
    assert is_bearer_token("Jv4.eQ-9tL_b3")
    assert is_bearer_token(_random(_ALNUM, 40, 16))
    assert not is_bearer_token("access_token")
    assert not is_bearer_token("config.auth.token")
    assert not is_bearer_token("${ACCESS_TOKEN}")


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("key A3TX" + _random(_BASE32, 16, 17), "aws-access-key-id"),
        ("AKIA" + _random(_BASE32, 16, 18) + "," + _random(_ALNUM + "/+", 40, 19),
         "aws-access-key-pair"),
        ("AccountName=dev;AccountKey=" + base64.b64encode(bytes(range(48))).decode()
         + ";", "azure-storage-account-key"),
        ("jwt_secret: '" + _random(_ALNUM, 9, 20) + '"' + _random(_ALNUM, 9, 21) + "'",
         "generic-secret-single-quoted"),
        ('jwt_secret: "' + _random(_ALNUM, 9, 22) + "'" + _random(_ALNUM, 9, 23) + '"',
         "generic-secret-quoted"),
        ("buildConfigField 'String', 'API_KEY', '\"" + _random(_HEX, 32, 24)
         + "\"'", "generic-secret-assignment"),
        ("password to proceed to installation:\n\n" + _random(_HEX, 32, 25),
         "jenkins-initial-admin-password"),
    ],
)  # fmt: skip
def test_formats_added_for_the_dev_set_gaps(text, rule_id):
    """Formats that the dev set showed missing, built from their documented layouts."""
    assert rule_id in _rule_ids(text)


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("curl -u deploy:" + _random(_ALNUM, 14, 26) + " https://ci.test/api",
         "curl-user-credentials"),
        ("docker login -u ci -p " + _random(_ALNUM, 14, 27) + " registry.test",
         "cli-short-password-flag"),
        ("<server><password>" + _random(_ALNUM, 14, 28) + "</password></server>",
         "xml-password-element"),
        ("vault login hvs." + _random(_ALNUM, 24, 29), "vault-service-token"),
        ("app_secret = '" + _random(_ALNUM, 16, 30) + "^k("
         + _random(_ALNUM, 16, 31) + "'",
         "generic-secret-single-quoted"),
    ],
)  # fmt: skip
def test_documented_formats_outside_the_dev_set(text, rule_id):
    """Documented credential layouts the dev set does not hold (curl -u, docker
    login -p, Maven <password>, Vault's 24-character hvs. tokens)."""
    assert rule_id in _rule_ids(text)


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("host=db.test dbname=app user=app password=" + _random(_ALNUM, 14, 40),
         "libpq-conninfo-password"),
        ("docker run -e POSTGRES_PASSWORD=" + _random(_ALNUM, 14, 41) + " postgres",
         "env-var-password-inline"),
        ("define( 'DB_PASSWORD', '" + _random(_ALNUM, 14, 42) + "' );",
         "wordpress-config-secret"),
        ("APP_KEY=base64:"
         + base64.b64encode(_random(_ALNUM, 32, 43).encode()).decode(),
         "laravel-app-key"),
        ("ldapsearch -x -D cn=admin,dc=test -w " + _random(_ALNUM, 14, 44),
         "ldap-bind-password-flag"),
        ("smbclient //fs/share -U TEST\\svc%" + _random(_ALNUM, 14, 45),
         "smb-user-percent-password"),
        ("net use Z: \\\\fs\\share /user:TEST\\svc " + _random(_ALNUM, 14, 46),
         "windows-net-use-password"),
        ('ConvertTo-SecureString "' + _random(_ALNUM, 14, 47) + '" -AsPlainText -Force',
         "powershell-plaintext-securestring"),
        ("sqlcmd -S db -U sa -P " + _random(_ALNUM, 14, 48), "sqlserver-cli-password"),
        ("redis-cli -h cache -a " + _random(_ALNUM, 14, 49), "redis-cli-password"),
        ("helm install db ./pg --set auth.password=" + _random(_ALNUM, 14, 50),
         "kubernetes-inline-password-flag"),
        ("kubectl create secret generic x --from-literal=api_key="
         + _random(_ALNUM, 32, 51), "kubernetes-inline-token-flag"),
        ('network={\n  psk="' + _random(_ALNUM, 14, 52) + '"\n}', "wifi-psk-quoted"),
        ("username admin password 7 " + cisco_type7(_random(_ALNUM, 12, 53), seed=7),
         "cisco-type7-password"),
        ("https://app-1.firebaseio.com/x.json?auth=" + _random(_ALNUM, 40, 54),
         "firebase-database-url-secret"),
        ("openssl rsa -in k.pem -passin pass:" + _random(_ALNUM, 14, 55),
         "openssl-pass-argument"),
        ("keytool -list -keystore a.jks -storepass " + _random(_ALNUM, 14, 56),
         "java-keytool-password"),
        ("gpg --batch --passphrase " + _random(_ALNUM, 14, 57) + " -d f.gpg",
         "cli-passphrase-flag"),
        ("7z a -p" + _random(_ALNUM, 14, 58) + " out.7z dir", "sevenzip-password-flag"),
        ("zip -r -P " + _random(_ALNUM, 14, 59) + " out.zip dir", "zip-password-flag"),
        ("sqlplus system/" + _random(_ALNUM, 14, 60) + "@//db.test:1521/ORCL",
         "oracle-cli-credentials"),
        ("cqlsh -u app -p " + _random(_ALNUM, 14, 61) + " db.test",
         "cqlsh-password-flag"),
        ("mc alias set s3 https://minio.test admin " + _random(_ALNUM, 14, 62),
         "minio-client-alias-secret"),
        ("requests.get(url, auth=('svc', '" + _random(_ALNUM, 14, 63) + "'))",
         "code-basic-auth-tuple"),
        ("btoa('svc:" + _random(_ALNUM, 14, 64) + "')", "code-btoa-basic-credentials"),
        ("eyJ0eXAiOiAiVENWMiJ9." + _random(_ALNUM + "_-", 36, 65) + "."
         + _random(_ALNUM + "_-", 48, 66), "teamcity-access-token"),
        ("pat." + _random(_ALNUM, 22, 67) + "." + _random(_HEX, 24, 68) + "."
         + _random(_ALNUM, 20, 69), "harness-access-token"),
    ],
)  # fmt: skip
def test_command_line_and_config_password_formats(text, rule_id):
    """Passwords in documented command-line flags and config syntaxes (libpq,
    docker -e, wp-config, Laravel, OpenLDAP, Samba, net use, PowerShell,
    sqlcmd, redis-cli, Helm/kubectl, Wi-Fi, Cisco type 7, Firebase)."""
    assert rule_id in _rule_ids(text)


@pytest.mark.parametrize(
    "text",
    [
        "ldapsearch -x -D cn=admin,dc=test -W -b dc=test",
        "net use Z: \\\\fs\\share /user:TEST\\svc *",
        "sqlcmd -S db -E -Q 'SELECT 1'",
        "helm install db ./pg --set auth.existingSecret=db-creds",
        "username admin password 7 times",
        "docker run -e POSTGRES_PASSWORD=$POSTGRES_PASSWORD postgres",
        "Run keytool with the -storepass option to set the keystore password.",
        "mysql --password option is insecure",
        "psexec -p option sets the password",
        "gpg --passphrase flag is insecure; prefer --passphrase-fd",
    ],
)
def test_prompting_forms_of_the_command_line_formats_are_not_findings(text):
    """Flags that prompt, references and names of secrets are not secrets."""
    assert _rule_ids(text) == set()


@pytest.mark.parametrize(
    "text",
    [
        "curl -u admin https://ci.test/api",
        'curl --user-agent "Mozilla/5.0 (X11; Linux)" https://site.test',
        "<passwordPolicy>strict</passwordPolicy>",
        '"//host:1337/:_password = "+new Buffer("x").toString("base64")',
        'password = "get_secret()"',
    ],
)
def test_look_alikes_of_the_new_formats_are_not_findings(text):
    """Prompting curl, element names and code expressions are not credentials."""
    assert _rule_ids(text) == set()


def test_basic_auth_needs_user_and_real_password():
    """Base64 of ``user:password`` passes; no colon or a placeholder fails."""
    password = _random(_ALNUM, 14, 10)

    def encoded(plain: str) -> str:
        return base64.b64encode(plain.encode()).decode()

    assert is_basic_auth_credential(encoded(f"deploy:{password}"))
    assert not is_basic_auth_credential(encoded("no-colon-here"))
    assert not is_basic_auth_credential(encoded("deploy:changeme"))


# -- development set ------------------------------------------------------------------


def _records(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _dev_split(datasets: Path) -> tuple[list[str], list[str]]:
    records = _records(datasets / "secret_noseyparker_rules.jsonl")
    positives = [str(r["text"]) for r in records if r["label"] == "secret"]
    negatives = [str(r["text"]) for r in records if r["label"] == "benign"]
    return positives, negatives


def _flagged_share(texts: list[str]) -> float:
    return sum(bool(_rule_ids(text)) for text in texts) / len(texts)


def _dev_rates(datasets: Path) -> tuple[float, float]:
    positives, negatives = _dev_split(datasets)

    return _flagged_share(positives), _flagged_share(negatives)


def test_dev_set_has_contradictory_labels(datasets):
    """Some hard negatives are the very texts of positives: no scanner gets both."""
    positives, negatives = _dev_split(datasets)
    contradictory = [text for text in negatives if text in set(positives)]

    assert len(contradictory) == CONTRADICTORY_NEGATIVES


def test_consistent_hard_negatives_regression(datasets):
    """Hard negatives that no positive repeats: flagged share does not grow."""
    positives, negatives = _dev_split(datasets)
    consistent = [text for text in negatives if text not in set(positives)]

    assert _flagged_share(consistent) <= CONSISTENT_NEGATIVE_CEILING


def test_dev_set_regression(datasets):
    """Recall and hard-negative rate on the noseyparker examples do not regress."""
    recall, hard_negative_rate = _dev_rates(datasets)

    assert recall >= RECALL_FLOOR
    assert hard_negative_rate <= HARD_NEGATIVE_CEILING


@pytest.mark.xfail(
    strict=True,
    reason="unreachable without reporting non-secrets: of the 66 missed positives "
    "(358/424), 26 are public identifiers (9 ARNs, 8 S3/GCS bucket URLs, 4 Google "
    "OAuth client ids, 2 AWS account ids, 2 Shopify store domains, 1 age public "
    "key), 13 are documentation placeholders in a provider's format (aaaa..., "
    "tvly-xxxx, NRAK-1234...ABCD, Okta's and kubeadm's doc tokens), 20 are "
    "placeholder or variable passwords (myPassword, thisismypassword, $password, "
    "%nothing%, ######), 6 are usernames and 1 holds no credential; even all 26 "
    "identifiers would give 384/424 = 0.906. Of the negatives, 16 are "
    "word-for-word positives (15 flagged, as those positives are caught); the "
    "other 12 flagged of 111 are literal credentials (a 36-hex+NRAL New Relic "
    "key, a UUID npm token, an Entra Q~ secret, passwords in URLs) that are "
    "negatives only because noseyparker's own regex for that rule misses them",
)
def test_dev_set_targets(datasets):
    """The lead's targets: recall >= 0.95 and at most 10% of hard negatives flagged."""
    recall, hard_negative_rate = _dev_rates(datasets)

    assert recall >= RECALL_TARGET
    assert hard_negative_rate <= HARD_NEGATIVE_TARGET


def test_no_findings_on_benign_prompts(datasets):
    """Benign prompt files and the benign records of attack files stay clean."""
    paths = [
        *datasets.glob("benign_*.jsonl"),
        *datasets.glob("injection_*.jsonl"),
        *datasets.glob("jailbreak_*.jsonl"),
    ]
    flagged = [
        (path.name, record["meta"])
        for path in paths
        for record in _records(path)
        if record["label"] == "benign" and _rule_ids(str(record["text"]))
    ]

    assert paths
    assert flagged == []
