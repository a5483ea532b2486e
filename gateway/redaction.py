"""Masking of secrets and personal data before text reaches a log, an attempt row or an error.

`Redactor(secrets).redact(text)` replaces, in this order:

1. every given secret (and its URL-encoded and JSON-escaped forms) with ``***``; a secret that
   is a URL keeps its scheme and host (``https://hooks.slack.com/***``) so the text stays useful;
2. whether or not they were given: credentials in URLs (``https://user:***@host``),
   ``Authorization`` values, bearer tokens, secret-like query parameters (``?token=***``), Slack
   webhook paths (``hooks.slack.com/services/***``), Slack tokens (``xoxb-***``) and Standard
   Webhooks secrets (``whsec_***``);
3. Indonesian phone numbers (``0812…``, ``+62 812 …``, ``62812…``), of which only the country or
   trunk prefix and the last 4 digits (3 for short numbers) stay readable: ``0********7890``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

__all__ = ["MASK", "Redactor"]

MASK = "***"

_MIN_SECRET_LENGTH = 4
"""Shorter values are not secrets worth masking: masking them would garble unrelated text."""

_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*:(?:\\?/){2})(?P<user>[^:/@\s\"'<>]*):[^@/\s\"'<>]+@"
)
_AUTH_HEADER = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:[A-Za-z]+\s+)?)[^\s\"',;]+",
    re.I,
)
_BEARER = re.compile(r"\b(?P<scheme>bearer\s+)[A-Za-z0-9\-._~+/]{6,}=*", re.I)
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:access_token|token|api_key|apikey|key|secret|signature|sig|password|auth)=)"
    r"[^&#\s\"'<>]+",
    re.I,
)
_SLACK_PATH = re.compile(
    r"(?P<host>hooks\.slack(?:-gov)?\.com(?:\\?/)(?:services|workflows|triggers)(?:\\?/))"
    r"[A-Za-z0-9_\-/\\]+"
)
_SLACK_TOKEN = re.compile(r"\b(?P<kind>xox[abposre])-[A-Za-z0-9-]+")
_WHSEC = re.compile(r"\bwhsec_[A-Za-z0-9+/=]+")
_PHONE = re.compile(
    r"(?<![\w+])"
    r"(?P<prefix>\+62[\s.-]?|62[\s.-]?|0)"
    r"(?P<rest>\(?[1-9](?:[\s().-]{0,2}\d){7,11})"
    r"(?![\w])"
)


class Redactor:
    """Masks known secrets, credential-shaped text and phone numbers in free text.

    Built once with every secret of the configuration (``Config.secrets`` plus each sink's
    ``secrets()``); `redact` is safe to call on any string, including ones it already masked.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        masks: dict[str, str] = {}
        for secret in secrets:
            if len(secret) < _MIN_SECRET_LENGTH:
                continue
            replacement = _mask_for(secret)
            for form in _forms(secret):
                masks.setdefault(form, replacement)
        self._masks = masks
        ordered = sorted(masks, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        """`text` with secrets, credentials and phone numbers masked."""
        if self._secrets is not None:
            text = self._secrets.sub(lambda m: self._masks[m.group(0)], text)
        text = _URL_CREDENTIALS.sub(rf"\g<scheme>\g<user>:{MASK}@", text)
        text = _AUTH_HEADER.sub(rf"\g<head>{MASK}", text)
        text = _BEARER.sub(rf"\g<scheme>{MASK}", text)
        text = _SECRET_QUERY.sub(rf"\g<key>{MASK}", text)
        text = _SLACK_PATH.sub(rf"\g<host>{MASK}", text)
        text = _SLACK_TOKEN.sub(rf"\g<kind>-{MASK}", text)
        text = _WHSEC.sub(f"whsec_{MASK}", text)
        return _PHONE.sub(_mask_phone, text)

    def __repr__(self) -> str:
        return f"Redactor({len(self._masks)} secret forms)"


def _forms(secret: str) -> set[str]:
    """The ways a secret shows up in text: as is, URL-encoded, JSON-escaped (``\\/``)."""
    forms = {secret, quote(secret, safe=""), quote(secret), secret.replace("/", "\\/")}
    if secret.startswith("whsec_"):
        forms.add(secret.removeprefix("whsec_"))
    return {f for f in forms if len(f) >= _MIN_SECRET_LENGTH}


def _mask_for(secret: str) -> str:
    """``***``, or ``scheme://host/***`` for a secret URL, so a reader still sees where."""
    if "://" in secret:
        try:
            parts = urlsplit(secret)
            host = parts.hostname
        except ValueError:
            return MASK
        if parts.scheme and host:
            return f"{parts.scheme}://{host}/{MASK}"
    return MASK


def _mask_phone(match: re.Match[str]) -> str:
    rest = match.group("rest")
    digits = sum(c.isdigit() for c in match.group(0))
    keep = 4 if digits >= 10 else 3
    masked: list[str] = []
    for char in reversed(rest):
        if char.isdigit():
            masked.append(char if keep > 0 else "*")
            keep -= 1
        else:
            masked.append(char)
    return match.group("prefix") + "".join(reversed(masked))
