"""Vendors' credentials, wherever they sit: under a harmless key, in text, in a frame local.

Each row is a format of the public catalogues (gitleaks' default rules, detect-secrets'
plugins) with a made-up sample of the vendor's shape and what is left of it. The near misses
below are values that look alike (ids, hashes, SHAs) and must stay.
"""

from __future__ import annotations

import random
import re
import string
from typing import Any

import pytest

from mina.observability.sentry.payloads import redact_sentry_event
from mina.redaction import REDACTED, Redactor
from mina.redaction.vendors import _CORE_LEAD, FORMATS, TOKEN_CORE, URL_FORMATS
from tools.regex_sample import Sampler

_rng = random.Random(20261201)
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
URLSAFE = ALNUM + "_-"
B64 = ALNUM + "+/"


def fake(alphabet: str, size: int) -> str:
    """Characters drawn from *alphabet*, the same on every run."""
    return "".join(_rng.choice(alphabet) for _ in range(size))


R = REDACTED

# (format, sample, what is left of the sample)
VENDORS = [
    ("AWS access key id", "AKIA" + fake(string.ascii_uppercase + "234567", 16), R),
    ("AWS temporary key id", "ASIA" + fake(string.ascii_uppercase + "234567", 16), R),
    ("AWS Bedrock API key", "ABSK" + fake(B64, 132), R),
    ("GitHub personal token", "ghp_" + fake(ALNUM, 36), R),
    ("GitHub OAuth token", "gho_" + fake(ALNUM, 36), R),
    ("GitHub user-to-server token", "ghu_" + fake(ALNUM, 36), R),
    ("GitHub server-to-server token", "ghs_" + fake(ALNUM, 36), R),
    ("GitHub refresh token", "ghr_" + fake(ALNUM, 36), R),
    ("GitHub fine-grained token", "github_pat_" + fake(ALNUM + "_", 82), R),
    ("GitLab personal token", "glpat-" + fake(URLSAFE, 20), R),
    ("GitLab deploy token", "gldt-" + fake(URLSAFE, 20), R),
    ("GitLab runner token", "glrt-" + fake(URLSAFE, 20), R),
    ("GitLab pipeline trigger token", "glptt-" + fake(HEX, 40), R),
    ("GitLab OAuth secret", "gloas-" + fake(URLSAFE, 64), R),
    ("GitLab runner registration token", "GR1348941" + fake(URLSAFE, 20), R),
    ("Slack bot token", "xoxb-1234567890123-1234567890123-" + fake(ALNUM, 24), R),
    ("Slack user token", "xoxp-1234567890-1234567890-1234567890-" + fake(HEX, 32), R),
    ("Slack app token", "xapp-1-A0123456789-1234567890123-" + fake(HEX, 64), R),
    ("Slack configuration token", "xoxe.xoxp-1-" + fake(ALNUM, 163), R),
    ("Stripe live secret key", "sk_live_" + fake(ALNUM, 24), R),
    ("Stripe restricted key", "rk_test_" + fake(ALNUM, 24), R),
    ("Stripe webhook secret", "whsec_" + fake(ALNUM, 32), R),
    ("OpenAI project key", "sk-proj-" + fake(URLSAFE, 74) + "T3BlbkFJ" + fake(URLSAFE, 74), R),
    ("OpenAI legacy key", "sk-" + fake(ALNUM, 20) + "T3BlbkFJ" + fake(ALNUM, 20), R),
    ("Anthropic key", "sk-ant-api03-" + fake(URLSAFE, 93) + "AA", R),
    ("Anthropic admin key", "sk-ant-admin01-" + fake(URLSAFE, 93) + "AA", R),
    ("Mapbox secret token", "sk.eyJ1IjoibWluYSJ9." + fake(URLSAFE, 22), R),
    ("Google API key", "AIza" + fake(URLSAFE, 35), R),
    ("Google OAuth client secret", "GOCSPX-" + fake(URLSAFE, 28), R),
    ("Google OAuth access token", "ya29." + fake(URLSAFE, 120), R),
    ("npm token", "npm_" + fake(ALNUM, 36), R),
    ("PyPI token", "pypi-AgEIcHlwaS5vcmc" + fake(URLSAFE, 60), R),
    ("RubyGems key", "rubygems_" + fake(HEX, 48), R),
    ("Twilio API key", "SK" + fake(HEX, 32), R),
    ("Twilio account SID", "AC" + fake(HEX, 32), R),
    ("SendGrid key", "SG." + fake(URLSAFE, 22) + "." + fake(URLSAFE, 43), R),
    ("Sendinblue key", "xkeysib-" + fake(HEX, 64) + "-" + fake(ALNUM, 16), R),
    ("Mailgun private key", "key-" + fake(HEX, 32), R),
    ("Mailgun signing key", fake(HEX, 32) + "-" + fake(HEX, 8) + "-" + fake(HEX, 8), R),
    ("Mailchimp key", fake(HEX, 32) + "-us21", R),
    ("Shopify access token", "shpat_" + fake(HEX, 32), R),
    ("Shopify shared secret", "shpss_" + fake(HEX, 32), R),
    ("Square access token", "EAAA" + fake(URLSAFE, 60), R),
    ("Square OAuth secret", "sq0csp-" + fake(URLSAFE, 43), R),
    ("DigitalOcean personal token", "dop_v1_" + fake(HEX, 64), R),
    ("DigitalOcean OAuth token", "doo_v1_" + fake(HEX, 64), R),
    ("Heroku key (v2)", "HRKU-AA" + fake(URLSAFE, 58), R),
    ("Azure AD client secret", "aB3" + "8Q~" + fake(ALNUM + "_~.-", 34), R),
    ("Databricks token", "dapi" + fake(HEX, 32), R),
    ("HashiCorp Vault service token", "hvs." + fake(URLSAFE, 95), R),
    ("HashiCorp Vault batch token", "hvb." + fake(URLSAFE, 150), R),
    ("Terraform Cloud token", fake(ALNUM, 14) + ".atlasv1." + fake(URLSAFE, 67), R),
    ("Doppler token", "dp.pt." + fake(ALNUM, 43), R),
    ("Linear key", "lin_api_" + fake(ALNUM, 40), R),
    (
        "Discord bot token",
        "MTA" + fake(URLSAFE, 21) + "." + fake(URLSAFE, 6) + "." + fake(URLSAFE, 38),
        R,
    ),
    ("Telegram bot token", "123456789:AA" + fake(URLSAFE, 33), R),
    ("Atlassian API token", "ATATT3" + fake(URLSAFE, 186), R),
    ("Hugging Face token", "hf_" + fake(string.ascii_letters, 34), R),
    ("Grafana cloud token", "glc_" + fake(ALNUM, 48), R),
    ("Grafana API key", "eyJrIjoi" + fake(ALNUM, 72), R),
    ("Grafana service account token", "glsa_" + fake(ALNUM, 32) + "_" + fake(HEX, 8), R),
    ("New Relic user key", "NRAK-" + fake(string.ascii_uppercase + string.digits, 27), R),
    ("Sentry user token", "sntryu_" + fake(HEX, 64), R),
    ("Postman key", "PMAK-" + fake(HEX, 24) + "-" + fake(HEX, 34), R),
    ("Pulumi token", "pul-" + fake(HEX, 40), R),
    ("PlanetScale password", "pscale_pw_" + fake(URLSAFE, 43), R),
    ("Notion token", "ntn_" + fake(string.digits, 11) + fake(ALNUM, 35), R),
    ("Perplexity key", "pplx-" + fake(ALNUM, 48), R),
    ("Prefect key", "pnu_" + fake(ALNUM, 36), R),
    ("Fly.io token", "fo1_" + fake(URLSAFE, 43), R),
    ("Dynatrace token", "dt0c01." + fake(ALNUM, 24) + "." + fake(ALNUM, 64), R),
    ("1Password service account token", "ops_eyJ" + fake(B64, 260), R),
    ("age secret key", "AGE-SECRET-KEY-1" + fake("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58), R),
    ("Alibaba access key id", "LTAI" + fake(ALNUM, 20), R),
    ("Artifactory key", "AKCp" + fake(ALNUM, 69), R),
    ("Clojars token", "CLOJARS_" + fake(ALNUM, 60), R),
    ("Cloudflare origin CA key", "v1.0-" + fake(HEX, 24) + "-" + fake(HEX, 146), R),
    ("EasyPost key", "EZAK" + fake(ALNUM, 54), R),
    ("Facebook access token", "EAAC" + fake(ALNUM, 120), R),
    ("Flutterwave secret key", "FLWSECK_TEST-" + fake("abcdef0123456789", 32) + "-X", R),
    ("Frame.io token", "fio-u-" + fake(URLSAFE, 64), R),
    ("Duffel token", "duffel_test_" + fake(URLSAFE, 43), R),
    ("Infracost token", "ico-" + fake(ALNUM, 32), R),
    ("OpenShift token", "sha256~" + fake(URLSAFE, 43), R),
    ("ReadMe key", "rdme_" + fake(string.ascii_lowercase + string.digits, 70), R),
    ("Scalingo token", "tk-us-" + fake(URLSAFE, 48), R),
    ("Settlemint token", "sm_pat_" + fake(ALNUM, 16), R),
    ("Shippo token", "shippo_live_" + fake(HEX, 40), R),
    ("Sourcegraph token", "sgp_" + fake(HEX, 16) + "_" + fake(HEX, 40), R),
    ("Typeform token", "tfp_" + fake(URLSAFE, 59), R),
    ("Adobe client secret", "p8e-" + fake(ALNUM, 32), R),
    ("JSON Web Token", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9." + fake(URLSAFE, 43), R),
    # Round three (issue 18): formats the catalogue lacked.
    (
        "JSON Web Token (gitleaks' form)",
        "eyJ0eXAiOiJKV1QiLCJhbGc.eyJpc3MiOiJtaW5hIiwic3Vi.sig" + fake(URLSAFE, 20),
        R,
    ),
    (
        "JSON Web Token in base64",
        "ZXlKaGJHY2lPaUpJVXpJMU5pSjkuZXlKemRXSWlPaUkwTWlKOQ" + fake(B64, 8),
        R,
    ),
    ("1Password secret key", "A3-ASWWYB-798JRY-LJVD4-23DC2-86TVM-H43EB", R),
    ("Airtable personal access token", "pat" + fake(ALNUM, 14) + "." + fake(HEX, 64), R),
    ("Artifactory reference token", "cmVmd" + fake(ALNUM, 59), R),
    (
        "Authress service key",
        "sc_" + fake(ALNUM, 12) + ".abcd.acc_" + fake(ALNUM, 16) + "." + fake(URLSAFE, 40),
        R,
    ),
    (
        "AWS Bedrock short-lived key",
        "bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t" + fake(B64, 40),
        R,
    ),
    ("ClickHouse Cloud secret", "4b1d" + fake(ALNUM, 38), R),
    (
        "Harness personal token",
        "pat." + fake(URLSAFE, 22) + "." + fake(ALNUM, 24) + "." + fake(ALNUM, 20),
        R,
    ),
    (
        "Harness service token",
        "sat." + fake(URLSAFE, 22) + "." + fake(ALNUM, 24) + "." + fake(ALNUM, 20),
        R,
    ),
    ("42 Intra client secret", "s-s4t2ud-" + fake(HEX, 64), R),
    ("MaxMind license key", fake(ALNUM, 6) + "_" + fake(ALNUM, 29) + "_mmk", R),
    ("Octopus Deploy key", "API-" + fake(string.ascii_uppercase + string.digits, 26), R),
    ("Dropbox short-lived token", "sl." + fake(URLSAFE, 135), R),
    ("Dropbox long-lived token", fake(ALNUM, 11) + "AAAAAAAAAA" + fake(URLSAFE, 43), R),
    ("GoCardless live token", "live_" + fake(URLSAFE, 40), R),
    ("Lob live key", "live_" + fake(HEX, 35), R),
    ("Lob publishable key", "test_pub_" + fake(HEX, 31), R),
    ("Plaid access token", "access-production-0f8fad5b-d9cb-469f-a165-70867728950e", R),
    ("Twitter bearer token", "A" * 22 + fake(ALNUM + "%", 90), R),
    ("Yandex IAM token", "t1." + fake(URLSAFE, 20) + "." + fake(URLSAFE, 86), R),
    ("Yandex API key", "AQVN" + fake(URLSAFE, 36), R),
    ("Mailgun public key", "pubkey-" + fake(HEX, 32), R),
    ("Defined Networking key", "dnkey-" + fake(URLSAFE, 26) + "-" + fake(URLSAFE, 52), R),
    ("HashiCorp Vault token (legacy)", "s." + fake(ALNUM, 23) + "7", R),
    ("Facebook access token", "1234567890123456|" + fake(URLSAFE, 32), R),
    ("Docker Hub token", "dckr_pat_" + fake(URLSAFE, 27), R),
    ("Figma token", "figd_" + fake(URLSAFE, 40), R),
    ("Groq key", "gsk_" + fake(ALNUM, 52), R),
    ("xAI key", "xai-" + fake(ALNUM, 80), R),
    ("Replicate token", "r8_" + fake(ALNUM, 37), R),
    ("NVIDIA key", "nvapi-" + fake(URLSAFE, 64), R),
    ("Tavily key", "tvly-dev-" + fake(ALNUM, 32), R),
    ("PostHog personal key", "phx_" + fake(ALNUM, 47), R),
    ("Netlify token", "nfp_" + fake(ALNUM, 40), R),
    ("Supabase key", "sbp_" + fake(HEX, 40), R),
    ("Tailscale key", "tskey-auth-" + fake(ALNUM, 12) + "-" + fake(ALNUM, 32), R),
    ("Buildkite token", "bkua_" + fake(HEX, 40), R),
    ("Render key", "rnd_" + fake(ALNUM, 32), R),
    ("Neon key", "napi_" + fake(HEX, 64), R),
    ("Resend key", "re_" + fake(ALNUM, 8) + "_" + fake(ALNUM, 24), R),
    ("Razorpay live key", "rzp_live_" + fake(ALNUM, 14), R),
    ("Bitbucket app password", "ATBB" + fake(ALNUM, 32), R),
    ("Notion integration secret", "secret_" + fake(ALNUM, 43), R),
    ("Pinecone key", "pcsk_" + fake(ALNUM, 60), R),
    ("Contentful token", "CFPAT-" + fake(URLSAFE, 43), R),
    ("Salesforce session id", "00D" + fake(ALNUM, 12) + "!" + fake(ALNUM + ".", 96), R),
    ("Asana personal token", "2/1204567890123/1204567890124:" + fake(HEX, 32), R),
    ("ElevenLabs key", "sk_" + fake(HEX, 48), R),
    (
        "Slack webhook",
        "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/" + fake(ALNUM, 24),
        f"https://hooks.slack.com/services/{R}",
    ),
    (
        "Slack workflow webhook",
        "https://hooks.slack.com/workflows/T0123ABCD/A0123ABCD/" + fake(ALNUM, 24),
        f"https://hooks.slack.com/workflows/{R}",
    ),
    (
        "Slack trigger webhook",
        "https://hooks.slack.com/triggers/T0123ABCD/1234567890/" + fake(HEX, 32),
        f"https://hooks.slack.com/triggers/{R}",
    ),
    (
        "Discord webhook (old host)",
        "https://discordapp.com/api/webhooks/123456789012345678/" + fake(URLSAFE, 68),
        f"https://discordapp.com/api/webhooks/{R}",
    ),
    (
        "Discord webhook",
        "https://discord.com/api/webhooks/123456789012345678/" + fake(URLSAFE, 68),
        f"https://discord.com/api/webhooks/{R}",
    ),
    (
        "Microsoft Teams webhook",
        "https://mina.webhook.office.com/webhookb2/" + fake(HEX, 32) + "@" + fake(HEX, 32),
        f"https://mina.webhook.office.com/webhookb2/{R}",
    ),
    (
        "Telegram bot API URL",
        "https://api.telegram.org/bot123456789:" + fake(URLSAFE, 35) + "/sendMessage",
        f"https://api.telegram.org/bot{R}/sendMessage",
    ),
    (
        "PEM private key",
        "-----BEGIN RSA PRIVATE KEY-----\n" + fake(B64, 64) + "\n-----END RSA PRIVATE KEY-----",
        f"-----BEGIN RSA PRIVATE KEY-----{R}-----END RSA PRIVATE KEY-----",
    ),
    # Connection strings: the secret is one Key=value; pair, the rest stays readable.
    (
        "Azure storage connection string",
        "DefaultEndpointsProtocol=https;AccountName=minastore;AccountKey="
        + fake(B64, 86)
        + "==;EndpointSuffix=core.windows.net",
        "DefaultEndpointsProtocol=https;AccountName=minastore;"
        f"AccountKey={R};EndpointSuffix=core.windows.net",
    ),
    (
        "Azure Service Bus connection string",
        "Endpoint=sb://mina.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey"
        ";SharedAccessKey=" + fake(B64, 43) + "=",
        "Endpoint=sb://mina.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey"
        f";SharedAccessKey={R}",
    ),
    (
        "SQL Server connection string",
        "Server=tcp:db.example.net,1433;Database=mina;User ID=mina;Password=Pa55-w0rd!;"
        "Encrypt=True;",
        f"Server=tcp:db.example.net,1433;Database=mina;User ID=mina;Password={R};Encrypt=True;",
    ),
    (
        "ODBC connection string",
        "Driver={PostgreSQL};Server=db;Uid=mina;Pwd=Pa55w0rd;",
        f"Driver={{PostgreSQL}};Server=db;Uid=mina;Pwd={R};",
    ),
    (
        "Azure SAS token",
        "BlobEndpoint=https://mina.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&sig="
        + fake(B64, 43),
        f"BlobEndpoint=https://mina.blob.core.windows.net/;SharedAccessSignature={R}&sig={R}",
    ),
    (
        "Redis URL with a password only",
        "redis://:" + fake(ALNUM, 24) + "@cache:6379/0",
        f"redis://:{R}@cache:6379/0",
    ),
]

NEAR_MISSES = [
    # (key, value): ids, hashes and words that share a prefix or a shape with a credential.
    ("request_id", "req-7f3c2a1b9d4e4f0a"),
    ("trace_id", "771a43a4192642f0b136d5159a501700"),
    ("span_id", "b1b2c3d4e5f60718"),
    ("event_id", "9ec79c33ec9942ab8353589fcb2e04dc"),
    ("meeting_id", "0f8fad5b-d9cb-469f-a165-70867728950e"),
    ("user_id", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
    ("checksum", "d41d8cd98f00b204e9800998ecf8427e"),
    ("etag", '"33a64df551425fcc55e4d42a148795d9f25f89d4"'),
    ("sha", "9eb30c3e5f0b9a2c4d6e8f10a2b4c6d8e0f1a3b5"),
    ("commit", "6263c42f81d0b5a7c3e9f2d4b6a8c0e1f3a5b7c9"),
    ("release", "mina@9eb30c3e5f0b9a2c4d6e8f10a2b4c6d8e0f1a3b5"),
    ("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("path", "/api/meetings/0f8fad5b-d9cb-469f-a165-70867728950e/chunks"),
    ("message", "skipping skeleton keys: see AKIA docs and ghp_ prefix rules"),
    ("message", "glpat- tokens expire; xoxb- tokens do not"),
    ("message", "key-rotation-policy applies to the dapi endpoint"),
    ("message", "API-first design, API-KEYS-ROTATED"),
    ("message", "meeting at 12345678:30 is not a bot token"),
    ("message", "sha256~ prefixes mark OpenShift tokens"),
    ("logger", "mina.observability.sentry.payloads"),
    ("module", "sentry_sdk.integrations.flask"),
    ("url", "https://hooks.slack.com/services/"),
    ("url", "https://api.telegram.org/bot/getMe"),
    ("connection", "Server=db;Database=mina;Trusted_Connection=True;"),
    ("key_name", "RootManageSharedAccessKey"),
    ("message", "see the Vault docs: s.AbcdefghijklmnopqrstuvwX is a word"),
    ("message", "pat.and.sat.are.prefixes"),
    ("message", "API-version headers and live_events streams"),
    ("order", "1234567890123456"),
    ("message", "secret_santa_assignments_were_sent_to_everyone_yes"),
    ("message", "re_run_all_tests_after_the_migration_is_done"),
    ("ratio", "2/3 of 1/2:done"),
]


def _frame_local(redactor: Redactor, value: str) -> Any:
    """What reaches Sentry of *value* held by a frame local (Sentry sends its repr)."""
    event = {
        "exception": {
            "values": [{"type": "E", "stacktrace": {"frames": [{"vars": {"value": repr(value)}}]}}]
        }
    }
    result = redact_sentry_event(redactor, event)
    return result["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"]["value"]


@pytest.mark.parametrize(("name", "sample", "expected"), VENDORS, ids=[v[0] for v in VENDORS])
def test_vendor_credentials(redactor: Redactor, name: str, sample: str, expected: str) -> None:
    """Under a harmless key, in free text and in a frame local, the credential goes."""
    assert {"note": expected} == redactor.redact({"note": sample})
    assert f"retrying with {expected} now" == redactor.redact_text(f"retrying with {sample} now")
    assert repr(expected) == _frame_local(redactor, sample)


@pytest.mark.parametrize(("key", "value"), NEAR_MISSES)
def test_near_misses_are_kept(redactor: Redactor, key: str, value: str) -> None:
    """Ids, hashes, SHAs and prefixes in prose stay as they are."""
    assert {key: value} == redactor.redact({key: value})
    assert f"{key}={value}" == redactor.redact_text(f"{key}={value}")


@pytest.mark.parametrize(("name", "pattern"), FORMATS + URL_FORMATS)
def test_every_catalogued_format_has_a_sample(name: str, pattern: str) -> None:
    """A format added to the catalogue comes with its row in the table above."""
    compiled = re.compile(pattern)

    assert [sample for _, sample, _ in VENDORS if compiled.search(sample)]


@pytest.mark.parametrize(("name", "pattern"), FORMATS)
def test_every_format_has_a_core_near_its_start(name: str, pattern: str) -> None:
    """Random tokens of each format hold 6 letters, digits, _ or - in a row, starting at most
    `_CORE_LEAD` characters in: runs without one are not searched (vendors.vendor_tokens)."""
    compiled = re.compile(pattern)
    sampler = Sampler(pattern, random.Random(name))
    samples = [t for t in (sampler.sample() for _ in range(300)) if compiled.fullmatch(t)]
    far = [t for t in samples if not TOKEN_CORE.search(t, 0, _CORE_LEAD + 6)]

    assert len(samples) >= 50
    assert [] == far
