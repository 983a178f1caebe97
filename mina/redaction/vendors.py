"""Vendors' credential formats: tokens recognisable by their prefix and shape alone.

The catalogue follows the public ones (gitleaks' default rules, detect-secrets' plugins) and
takes every format they match without guessing from entropy or from a nearby keyword: a
fixed prefix (``ghp_``, ``xoxb-``, ``AKIA``, ``sk_live_``...) or a shape no ordinary text
has (``<32 hex>-us12``, ``123456789:AA...`` after ``/bot``). Formats that are only
recognisable next to a vendor's name (a Heroku key is a bare UUID, a Datadog key 40
characters of hex) are left to the key rules (``HEROKU_API_KEY``) and to ``name=value``
pairs, so request ids, trace ids, UUIDs and hashes stay.

Patterns adapted from gitleaks' rules are used under its MIT licence (copyright (c) 2019
Zachary Rice; ``LICENSES/gitleaks.txt``); trufflehog's detectors (AGPL) were read for the
formats only, no code was taken.

To add a format: one ``(name, pattern)`` line in `FORMATS` (or `URL_FORMATS` for a secret
inside a URL's path), a sample in ``tests/redaction/test_vendors.py``, and, if it could
catch ordinary text, a near miss there too.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "FORMATS",
    "TOKEN_RUN",
    "URL_FORMATS",
    "URL_HINTS",
    "URL_TOKEN",
    "VENDOR_TOKEN",
    "VENDOR_TOKEN_AFTER_ESCAPE",
    "vendor_tokens",
]

#: Standalone tokens: each must start and end at a token boundary (no letter, digit, ``_`` or
#: ``-`` on either side).
FORMATS: Final = (
    ("AWS access key id", r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}"),
    ("AWS Bedrock API key", r"ABSK[A-Za-z0-9+/]{109,269}={0,2}"),
    ("GitHub token", r"gh[pousr]_[A-Za-z0-9]{20,}"),
    ("GitHub fine-grained token", r"github_pat_[A-Za-z0-9_]{20,}"),
    (
        "GitLab token",
        r"gl(?:pat|dt|ffct|ft|imt|agent|oas|ptt|rt|soat|cbt|ds|cd|wt)-[A-Za-z0-9_\-.]{20,}",
    ),
    ("GitLab runner registration token", r"GR1348941[A-Za-z0-9_\-]{20,}"),
    ("Slack token", r"xox[abeoprs]-[A-Za-z0-9\-]{10,}"),
    ("Slack configuration token", r"(?i:xoxe.xox[bp]-|xoxe-)[A-Za-z0-9\-]{20,}"),
    ("Slack app token", r"(?i:xapp-)[A-Za-z0-9\-]{10,}"),
    ("Stripe secret or restricted key", r"(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,}"),
    ("Stripe webhook secret", r"whsec_[A-Za-z0-9]{16,}"),
    ("OpenAI, Anthropic and other sk- keys", r"sk-[A-Za-z0-9_\-]{20,}"),
    ("Mapbox secret token", r"sk\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}"),
    ("Google API key", r"AIza[A-Za-z0-9_\-]{35}"),
    ("Google OAuth client secret", r"GOCSPX-[A-Za-z0-9_\-]{28}"),
    ("Google OAuth access token", r"ya29\.[A-Za-z0-9_\-]{20,}"),
    ("npm token", r"(?i:npm_)[A-Za-z0-9]{36}"),
    ("PyPI token", r"pypi-[A-Za-z0-9_\-]{50,}"),
    ("RubyGems key", r"rubygems_[a-f0-9]{48}"),
    ("Twilio API key or account SID", r"(?:SK|AC)[0-9a-fA-F]{32}"),
    ("SendGrid key", r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}|SG\.[A-Za-z0-9=_\-.]{66}"),
    ("Sendinblue key", r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}"),
    ("Mailgun key", r"key-[a-f0-9]{32}"),
    ("Mailgun signing key", r"[a-f0-9]{32}-[a-f0-9]{8}-[a-f0-9]{8}"),
    ("Mailchimp key", r"[a-f0-9]{32}-us[0-9]{1,2}"),
    ("Shopify token or secret", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"),
    ("Square token or secret", r"sq0(?:atp|csp)-[A-Za-z0-9_\-]{22,60}|EAAA[A-Za-z0-9_\-]{22,60}"),
    ("DigitalOcean token", r"(?i:do[opr]_v1_)[a-fA-F0-9]{64}"),
    ("Heroku key (v2)", r"HRKU-AA[A-Za-z0-9_\-]{58}"),
    ("Azure AD client secret", r"[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34}"),
    ("Databricks token", r"dapi[a-f0-9]{32}(?:-[0-9])?"),
    ("HashiCorp Vault token", r"hv[sbr]\.[A-Za-z0-9_\-]{24,300}"),
    ("Terraform Cloud token", r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-=]{60,70}"),
    ("Doppler token", r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}"),
    ("Linear key", r"lin_(?:api|oauth)_[A-Za-z0-9]{40,64}"),
    ("Discord bot token", r"[MNO][A-Za-z0-9_\-]{23,25}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,38}"),
    ("Telegram bot token", r"[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}"),
    ("Atlassian API token", r"(?i:ATATT3)[A-Za-z0-9_\-=]{186}"),
    ("Hugging Face token", r"(?:hf_|api_org_)[A-Za-z]{34}"),
    (
        "Grafana token",
        r"(?i:glc_)[A-Za-z0-9+/]{32,400}={0,3}|(?i:glsa_)[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}",
    ),
    ("Grafana API key", r"(?i:eyJrIjoi)[A-Za-z0-9]{70,400}={0,3}"),
    ("New Relic key", r"NR(?:AK|II|JS)-[A-Za-z0-9\-]{19,32}"),
    ("Sentry token", r"sntry[us]_[A-Za-z0-9+/=_]{40,}"),
    ("Postman key", r"PMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}"),
    ("Pulumi token", r"pul-[a-f0-9]{40}"),
    ("PlanetScale token", r"(?i:pscale_(?:tkn|oauth|pw)_)[A-Za-z0-9_=.\-]{32,64}"),
    ("Notion token", r"ntn_[0-9]{11}[A-Za-z0-9]{35}"),
    ("Perplexity key", r"pplx-[A-Za-z0-9]{48}"),
    ("Prefect key", r"pnu_[A-Za-z0-9]{36}"),
    ("Fly.io token", r"fo1_[A-Za-z0-9_\-]{43}|fm[12][ar]?_[A-Za-z0-9+/]{100,}={0,3}"),
    ("Dynatrace token", r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}"),
    ("1Password service account token", r"ops_eyJ[A-Za-z0-9+/]{250,}={0,3}"),
    ("age secret key", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),
    ("Alibaba access key id", r"LTAI[A-Za-z0-9]{20}"),
    ("Artifactory key", r"AKCp[A-Za-z0-9]{69}"),
    ("Clojars token", r"(?i:clojars_)[A-Za-z0-9]{60}"),
    ("Cloudflare origin CA key", r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}"),
    ("EasyPost key", r"EZ[AT]K[A-Za-z0-9]{54}"),
    ("Facebook access token", r"EAA[MC][A-Za-z0-9]{100,}"),
    ("Flutterwave key", r"FLW(?:SECK|PUBK)_TEST-[a-hA-H0-9]{12,32}(?:-[Xx])?"),
    ("Frame.io token", r"fio-u-[A-Za-z0-9_=\-]{64}"),
    ("Duffel token", r"duffel_(?:test|live)_[A-Za-z0-9_=\-]{43}"),
    ("Infracost token", r"ico-[A-Za-z0-9]{32}"),
    ("OpenShift token", r"sha256~[A-Za-z0-9_\-]{43}"),
    ("ReadMe key", r"rdme_[a-z0-9]{70}"),
    ("Scalingo token", r"tk-us-[A-Za-z0-9_\-]{48}"),
    ("Settlemint token", r"sm_(?:aat|pat|sat)_[A-Za-z0-9]{16}"),
    ("Shippo token", r"shippo_(?:live|test)_[a-fA-F0-9]{40}"),
    ("Sourcegraph token", r"sgp_(?:[a-fA-F0-9]{16}_|local_)?[a-fA-F0-9]{40}"),
    ("Typeform token", r"(?i:tfp_)[A-Za-z0-9_=.\-]{59}"),
    ("Adobe client secret", r"p8e-[A-Za-z0-9]{32}"),
    ("JSON Web Token", r"eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}(?:\.[A-Za-z0-9_\-]*)?"),
    # gitleaks' JWT: any "ey" header and payload, also with "/" and "\\" (escaped JSON).
    (
        "JSON Web Token (loose)",
        r"ey[A-Za-z0-9]{17,}\.ey[A-Za-z0-9/\\_\-]{17,}\.(?:[A-Za-z0-9/\\_\-]{10,}={0,2})?",
    ),
    ("JSON Web Token in base64", r"ZXlK[A-Za-z0-9/\\_+\-]{40,}={0,2}"),
    (
        "1Password secret key",
        r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}",
    ),
    ("Airtable personal access token", r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}"),
    ("Artifactory reference token", r"cmVmd[A-Za-z0-9]{59}"),
    (
        "Authress service key",
        r"(?:sc|ext|scauth|authress)_[A-Za-z0-9]{5,30}\.[A-Za-z0-9]{4,6}\.acc[_\-]"
        r"[A-Za-z0-9\-]{10,32}\.[A-Za-z0-9+/_=\-]{30,120}",
    ),
    (
        "AWS Bedrock short-lived key",
        r"bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t[A-Za-z0-9+/=%]*",
    ),
    ("ClickHouse Cloud secret", r"4b1d[A-Za-z0-9]{38}"),
    ("Harness token", r"(?:pat|sat)\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}"),
    ("42 Intra client secret", r"s-s4t2(?:ud|af)-[A-Fa-f0-9]{64}"),
    ("MaxMind license key", r"[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk"),
    ("Octopus Deploy key", r"API-[A-Z0-9]{26}"),
    ("Dropbox short-lived token", r"sl\.[A-Za-z0-9\-=_]{135}"),
    ("Dropbox long-lived token", r"[A-Za-z0-9]{11}AAAAAAAAAA[A-Za-z0-9\-_=]{43}"),
    ("GoCardless live token", r"live_[A-Za-z0-9\-_=]{40}"),
    ("Lob key", r"(?:live|test)_(?:pub_[a-f0-9]{31}|[a-f0-9]{35})"),
    (
        "Plaid access token",
        r"access-(?:sandbox|development|production)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}"
        r"-[0-9a-f]{4}-[0-9a-f]{12}",
    ),
    ("Twitter bearer token", r"A{22}[A-Za-z0-9%]{80,100}"),
    (
        "Yandex token",
        r"t1\.[A-Za-z0-9_\-]+={0,2}\.[A-Za-z0-9_\-]{86}={0,2}|AQVN[A-Za-z0-9_\-]{35,38}",
    ),
    ("Mailgun public key", r"pubkey-[a-f0-9]{32}"),
    ("Defined Networking key", r"dnkey-[A-Za-z0-9=_\-]{26}-[A-Za-z0-9=_\-]{52}"),
    # Legacy Vault service tokens: "s." and 24 letters and digits, at least one digit (24
    # letters alone are a word or an identifier).
    ("HashiCorp Vault token (legacy)", r"s\.(?=[A-Za-z]*[0-9])[A-Za-z0-9]{24}"),
    ("Facebook access token", r"[0-9]{15,16}(?:\||%7[Cc]|%)[0-9A-Za-z\-_]{27,40}"),
    # Prefixes from trufflehog's detectors and the vendors' documentation (formats only).
    ("Docker Hub token", r"dckr_(?:pat|oat)_[A-Za-z0-9_\-]{24,}"),
    ("Figma token", r"figd_[A-Za-z0-9_\-]{38,}"),
    ("Groq key", r"gsk_[A-Za-z0-9]{48,}"),
    ("xAI key", r"xai-[A-Za-z0-9]{70,}"),
    ("Replicate token", r"r8_[A-Za-z0-9]{37}"),
    ("NVIDIA key", r"nvapi-[A-Za-z0-9_\-]{60,}"),
    ("Tavily key", r"tvly-(?:dev-|prod-)?[A-Za-z0-9]{32,}"),
    ("PostHog personal key", r"phx_[A-Za-z0-9]{40,}"),
    ("Netlify token", r"nfp_[A-Za-z0-9]{36,}"),
    ("Supabase key", r"sbp_[a-f0-9]{40}|sb_secret_[A-Za-z0-9_\-]{20,}"),
    ("Tailscale key", r"tskey-(?:api|auth|client|scim|webhook)-[A-Za-z0-9]{8,}-[A-Za-z0-9]{16,}"),
    ("Buildkite token", r"bkua_[a-f0-9]{40}"),
    ("Render key", r"rnd_[A-Za-z0-9]{32}"),
    ("Neon key", r"napi_[a-z0-9]{64}"),
    ("Resend key", r"re_[A-Za-z0-9]{8}_[A-Za-z0-9]{24}"),
    ("Razorpay live key", r"rzp_live_[A-Za-z0-9]{14,}"),
    ("Bitbucket app password", r"ATBB[A-Za-z0-9_=.\-]{28,}"),
    ("Notion integration secret", r"secret_[A-Za-z0-9]{43}"),
    ("Pinecone key", r"pcsk_[A-Za-z0-9_]{40,}"),
    ("Contentful token", r"CFPAT-[A-Za-z0-9_\-]{43}"),
    ("Salesforce session id", r"00D[A-Za-z0-9]{12,15}![A-Za-z0-9._]{60,}"),
    ("Asana personal token", r"[0-9]/[0-9]{10,20}(?:/[0-9]{10,20})?:[A-Za-z0-9]{32}"),
    ("ElevenLabs key", r"sk_[a-f0-9]{48}"),
)

#: Secrets inside a URL (webhooks, bot APIs): the host stays, the secret part goes.
URL_FORMATS: Final = (
    ("Slack webhook", r"(?<=hooks\.slack\.com/services/)[A-Za-z0-9+/]{20,}"),
    ("Slack workflow webhook", r"(?<=hooks\.slack\.com/workflows/)[A-Za-z0-9+/]{20,}"),
    ("Slack trigger webhook", r"(?<=hooks\.slack\.com/triggers/)[A-Za-z0-9+/]{20,}"),
    ("Discord webhook", r"(?<=discord\.com/api/webhooks/)[0-9]+/[A-Za-z0-9_\-]{20,}"),
    ("Discord webhook (old host)", r"(?<=discordapp\.com/api/webhooks/)[0-9]+/[A-Za-z0-9_\-]{20,}"),
    ("Microsoft Teams webhook", r"(?<=\.webhook\.office\.com/webhookb2/)[^\s\"'<>]{20,}"),
    ("Telegram bot API", r"(?<=/bot)[0-9]{8,10}:[A-Za-z0-9_\-]{35}"),
)

_BOUNDARY = r"A-Za-z0-9_\-"

#: A run of the characters any format is made of, 12 or more (the shortest format's
#: length): only inside one can a token be.
TOKEN_RUN: Final = re.compile(r"[A-Za-z0-9_\-.~+/=%|:!\\]{12,}")

#: Every standalone format in one alternation between token boundaries, searched only
#: inside a `TOKEN_RUN`. Measured: one alternation behind one look-behind lets the engine
#: skip most positions; a boundary per format, the URL formats in the same pattern, a
#: first-character dispatch in Python or a look-ahead per first character were slower.
VENDOR_TOKEN: Final = re.compile(
    f"(?<![{_BOUNDARY}])(?:{'|'.join(p for _, p in FORMATS)})(?![{_BOUNDARY}])"
)

#: The same formats right after a repr's escape ("\\tghp_...", "\\nAKIA..."), searched only
#: in runs holding a backslash: a second look-behind in `VENDOR_TOKEN` slowed every search.
VENDOR_TOKEN_AFTER_ESCAPE: Final = re.compile(
    f"(?<=\\\\[ntr])(?:{'|'.join(p for _, p in FORMATS)})(?![{_BOUNDARY}])"
)


#: Six letters, digits, "_" or "-" in a row: every format's random part has them (its
#: samples are tested), so a run without them ("a.a.a.", "1:1:", "%41%41", "\\t\\t") holds
#: no token and costs one search instead of the alternation at every position after a
#: separator.
TOKEN_CORE: Final = re.compile(r"[A-Za-z0-9_\-]{6}")
# How far before its first core a token may start (its prefix: "sk-ant-api03-", "A3-").
_CORE_LEAD: Final = 32


def vendor_tokens(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Return the spans of the vendors' tokens inside ``text[start:end]``, a `TOKEN_RUN`."""
    core = TOKEN_CORE.search(text, start, end)
    if core is None:
        return []
    start = max(start, core.start() - _CORE_LEAD)
    first = VENDOR_TOKEN.search(text, start, end)  # most runs have none: no list, no loop
    spans = (
        [] if first is None else [m.span() for m in VENDOR_TOKEN.finditer(text, first.start(), end)]
    )
    if text.find("\\", start, end) >= 0:
        spans.extend(m.span() for m in VENDOR_TOKEN_AFTER_ESCAPE.finditer(text, start, end))
    return spans


#: The URL formats, searched only in texts holding one of `URL_HINTS`.
URL_TOKEN: Final = re.compile(f"(?:{'|'.join(p for _, p in URL_FORMATS)})(?![{_BOUNDARY}])")
URL_HINTS: Final = ("hooks.slack.com/", "/api/webhooks/", ".webhook.office.com/", "/bot")
