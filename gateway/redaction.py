"""Every rule for secrets and personal data, before text reaches a log, an attempt row or an error.

Which configuration keys hold secrets
    `is_secret_key` (the words of `SECRET_KEYS`): a value under such a key (``token``,
    ``secret``, ``webhook_url``, an ``X-Api-Key`` header, ...) is a secret. `secret_values`
    collects them from a configuration block, with the secret parts of every URL in it
    (`url_secrets`); `mask_config` prints a block with them replaced by ``***``.

What `Redactor(secrets).redact(text)` (or `redact_text(text, secrets)`) masks, in this order:

1. every given secret (and its URL-encoded and JSON-escaped forms, and the credential after
   ``Bearer``) with ``***``; a secret that is a URL keeps its scheme and host
   (``https://hooks.slack.com/***``) so the text stays useful;
2. whether or not they were given: credentials in URLs (``https://user:***@host``),
   ``Authorization`` values, bearer tokens (token-shaped: not a plain word such as ``bearer
   token.``), query parameters whose name is a secret key
   (``?token=***``), Slack webhook paths (``hooks.slack.com/services/***``), Slack tokens
   (``xoxb-***``) and Standard Webhooks secrets (``whsec_***``);
3. Indonesian phone numbers in any of their written forms (`mask_phone`): ``0812…``,
   ``62812…``, ``+62 812-…``, with spaces, dots, dashes or brackets between the digits;
4. email addresses (`mask_email`): ``budi.s@example.com`` becomes ``b***@example.com``; a
   ``Message-ID`` (``In-Reply-To``, ``References``) is no one's address and stays whole.

Phone numbers and emails are found in every encoding a sink's request or a provider's answer
carries them: as written, URL-encoded (a form body or a query string: ``To=%2B62812…``,
``budi%40example.com``, ``+`` for a space) and JSON-escaped (``\u002b62812…``, ``\n0812…``).
Such text is read decoded (`_Decoded`) and masked in place, in its own encoding.

`LogRedaction`, installed on the log handlers by ``kabarin`` (`install_log_redaction`), applies
the same masking to every log record's final message and traceback, whichever library logged it.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

__all__ = [
    "MASK",
    "SECRET_KEYS",
    "LogRedaction",
    "Redactor",
    "install_log_redaction",
    "is_secret_key",
    "mask_config",
    "mask_email",
    "mask_phone",
    "mask_url",
    "redact_text",
    "secret_values",
    "url_secrets",
    "use_log_secrets",
]

MASK = "***"

SECRET_KEYS: tuple[str, ...] = (
    "token",
    "secret",
    "password",
    "passwd",
    "key",
    "auth",
    "credential",
    "signature",
    "cookie",
    "webhook_url",
)
"""A configuration key, header or query parameter whose name contains one of these words
(case and ``-``/``_`` ignored) holds a secret: ``api_key``, ``X-Api-Key``, ``Authorization``,
``access_token``, ``smtp_password``, ``webhook_url``."""

_SECRET_NAMES = frozenset({"sig", "code", "pw", "pass"})
"""Short names that are secrets only as the whole name (``?sig=``, an OAuth ``?code=``)."""

_MIN_SECRET_LENGTH = 4
"""Shorter values are not secrets worth masking: masking them would garble unrelated text."""

_SLACK_HOSTS = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})

_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*:(?:\\?/){2})(?P<user>[^:/@\s\"'<>]*):[^@/\s\"'<>]+@"
)
_AUTH_HEADER = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:[A-Za-z]+\s+)?)[^\s\"',;]+",
    re.I,
)
_BEARER = re.compile(r"\b(?P<scheme>bearer\s+)(?P<token>[A-Za-z0-9\-._~+/]{6,}=*)", re.I)
_PLAIN_WORD = re.compile(r"(?:[A-Za-z][a-z]*|[A-Z]+)[.]?")
"""What follows "bearer" in prose ("the push's bearer token."), not a credential: letters only,
in one case (or capitalised), shorter than 16, maybe ending a sentence. A token has a digit, a
symbol, mixed case or 16+ characters; a configured secret is masked by value whatever its shape."""


def _mask_bearer_match(m: re.Match[str]) -> str:
    token = m["token"]
    if len(token) < 16 and _PLAIN_WORD.fullmatch(token):
        return m.group(0)
    return f"{m['scheme']}{MASK}"


_QUERY_PARAM = re.compile(r"(?P<key>[?&;](?P<name>[A-Za-z0-9_.\-]+)=)(?P<value>[^&#\s\"'<>]+)")
_SLACK_PATH = re.compile(
    r"(?P<host>hooks\.slack(?:-gov)?\.com(?:\\?/)(?:services|workflows|triggers)(?:\\?/))"
    r"[A-Za-z0-9_\-/\\]+"
)
_SLACK_TOKEN = re.compile(r"\b(?P<kind>xox[abposre])-[A-Za-z0-9-]+")
_WHSEC = re.compile(r"\bwhsec_[A-Za-z0-9+/=]+")
_PHONE = re.compile(
    r"(?<!\w)"
    r"(?P<prefix>\+62[\s.+-]?|62[\s.+-]?|0)"
    r"(?P<rest>\(?[1-9](?:[\s().+-]{0,2}\d){7,11})"
    r"(?![\w])"
)
"""``+`` separates digits too: it is a space in a form body or a query string."""
_DOMAIN_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_EMAIL = re.compile(
    r"(?<![\w.%+-])(?P<first>[A-Za-z0-9])[A-Za-z0-9._%+-]*"
    rf"@(?P<domain>{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*\.[A-Za-z]{{2,}})"
)
_MESSAGE_ID = re.compile(
    r"\b(?:message-id|in-reply-to|references)[\"']?\s*[:=]\s*[\"']?"
    r"(?P<ids>(?:<[^<>\s]+>[\s,]*)+)",
    re.I,
)
"""A mail's own identifiers (``<dlv_….kabarin@toko.example>``), shaped like addresses."""
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}|\\u[0-9A-Fa-f]{4}|\\[\\\"/bfnrt]")
"""A URL-encoded byte or a JSON escape: what hides a phone number or an email from a pattern."""
_JSON_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_PHONE_HEAD = 3
"""Digits kept after the country code or trunk 0: the operator prefix (``812``: Telkomsel) says
which carrier, not which person."""
_PHONE_TAIL = 3


def is_secret_key(name: str) -> bool:
    """Whether a value under this configuration key, header or query parameter is a secret."""
    name = name.lower().replace("-", "_")
    return name in _SECRET_NAMES or any(word in name for word in SECRET_KEYS)


def secret_values(data: Any) -> list[str]:
    """Every secret in a configuration block (plain data, as parsed from YAML).

    A string under a secret key is one (with the credential after ``Bearer ``/``Basic `` and the
    key of a ``whsec_`` secret on their own); every URL, under any key, adds its own secret
    parts (`url_secrets`). A mapping's values are judged by their own keys, a list's items by
    the list's key.
    """
    found: list[str] = []

    def walk(value: Any, secret: bool) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, is_secret_key(str(k)))
        elif isinstance(value, list):
            for v in value:
                walk(v, secret)
        elif isinstance(value, str) and value:
            if secret:
                found.append(value)
                found.append(value.split(" ", 1)[-1])
                found.append(value.removeprefix("whsec_"))
            if "://" in value:
                found.extend(url_secrets(value))

    walk(data, False)
    return [s for s in dict.fromkeys(found) if len(s) >= _MIN_SECRET_LENGTH]


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that let anyone use it: its password (and the Basic credential made
    from it), secret query values, and a Slack webhook's path and last segment."""
    try:
        parts = urlsplit(url)
        password, username, host = parts.password, parts.username, parts.hostname
    except ValueError:
        return []
    found: list[str] = []
    if password:
        found.append(password)
        found.append(base64.b64encode(f"{username or ''}:{password}".encode()).decode())
    found += [value for name, value in parse_qsl(parts.query) if is_secret_key(name)]
    if host in _SLACK_HOSTS and parts.path.strip("/"):
        found += [parts.path, parts.path.rstrip("/").rsplit("/", 1)[-1]]
    return [s for s in dict.fromkeys(found) if len(s) >= _MIN_SECRET_LENGTH]


def mask_url(url: str) -> str:
    """A URL fit for logs and summaries: no password, secret query values or Slack path."""
    return redact_text(url)


def mask_config(data: Any, key: str = "") -> Any:
    """A configuration block (plain data) for printing: a value under a secret key is ``***``
    whole, every other string is masked like free text (`redact_text`)."""
    if isinstance(data, dict):
        return {k: mask_config(v, str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [mask_config(v, key) for v in data]
    if isinstance(data, str):
        return MASK if data and is_secret_key(key) else redact_text(data)
    return data


def mask_phone(phone: str) -> str:
    """A phone number with its middle digits masked: ``+6281234567890`` → ``+62812*****890``.

    An Indonesian number (``08…``, ``628…``, ``+62 8…``, landlines too) keeps its country code or
    trunk 0, the next 3 digits (the operator or area prefix) and its last 3 digits, and every
    separator as written. Any other number keeps only its last 3 digits.
    """
    masked, found = _PHONE.subn(_mask_phone_match, phone)
    if found:
        return masked
    total = sum(c.isdigit() for c in phone)
    return _mask_digits(phone, head=0, tail=min(_PHONE_TAIL, total // 2))


def mask_email(email: str) -> str:
    """``budi.santoso@example.com`` → ``b***@example.com``: the first letter and the domain."""
    masked, found = _EMAIL.subn(_mask_email_match, email)
    if found:
        return masked
    local, at, domain = email.rpartition("@")
    return f"{local[:1]}{MASK}@{domain}" if at and local else MASK


class Redactor:
    """Masks known secrets, credential-shaped text, phone numbers and emails in free text.

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
        """`text` with secrets, credentials, phone numbers and emails masked."""
        if self._secrets is not None:
            text = self._secrets.sub(lambda m: self._masks[m.group(0)], text)
        text = _URL_CREDENTIALS.sub(rf"\g<scheme>\g<user>:{MASK}@", text)
        text = _AUTH_HEADER.sub(rf"\g<head>{MASK}", text)
        text = _BEARER.sub(_mask_bearer_match, text)
        text = _QUERY_PARAM.sub(_mask_query_match, text)
        text = _SLACK_PATH.sub(rf"\g<host>{MASK}", text)
        text = _SLACK_TOKEN.sub(rf"\g<kind>-{MASK}", text)
        text = _WHSEC.sub(f"whsec_{MASK}", text)
        text = _PHONE.sub(_mask_phone_match, text)
        text = _mask_emails(text)
        return _mask_encoded(text)

    def __repr__(self) -> str:
        return f"Redactor({len(self._masks)} secret forms)"


_PATTERNS_ONLY = Redactor(())


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` masked as `Redactor(secrets).redact` does; without secrets, the patterns only.

    For one-off texts: a caller that redacts often builds its `Redactor` once.
    """
    redactor = _PATTERNS_ONLY if not secrets else Redactor(secrets)
    return redactor.redact(text)


class LogRedaction(logging.Filter):
    """Masks every record's final message and traceback as `Redactor.redact` does.

    On a handler, not a logger: a logger's filter sees only that logger's own records, a
    handler's sees every record that reaches it, from any library.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor or _PATTERNS_ONLY

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor.redact
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Put a `LogRedaction` on every handler of `logger` (the root one) that has none yet."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, LogRedaction) for f in handler.filters):
            handler.addFilter(LogRedaction())


def use_log_secrets(redactor: Redactor, logger: logging.Logger | None = None) -> None:
    """Make the installed `LogRedaction` filters mask `redactor`'s secrets too (once a
    configuration is loaded); a process that installed none is left alone."""
    for handler in (logger or logging.getLogger()).handlers:
        for f in handler.filters:
            if isinstance(f, LogRedaction):
                f.redactor = redactor


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


def _mask_query_match(match: re.Match[str]) -> str:
    return match.group("key") + MASK if is_secret_key(match.group("name")) else match.group(0)


def _mask_phone_match(match: re.Match[str]) -> str:
    return match.group("prefix") + _mask_digits(
        match.group("rest"), head=_PHONE_HEAD, tail=_PHONE_TAIL
    )


def _mask_digits(text: str, *, head: int, tail: int) -> str:
    """`text` with every digit but the first `head` and the last `tail` replaced by ``*``."""
    total = sum(c.isdigit() for c in text)
    seen = 0
    out: list[str] = []
    for char in text:
        if char.isdigit():
            keep = seen < head or seen >= total - tail
            out.append(char if keep else "*")
            seen += 1
        else:
            out.append(char)
    return "".join(out)


def _mask_email_match(match: re.Match[str]) -> str:
    return f"{match.group('first')}{MASK}@{match.group('domain')}"


def _mask_emails(text: str) -> str:
    """Every email masked, but not the identifiers of a ``Message-ID`` and its kin."""
    out: list[str] = []
    last = 0
    for match in _MESSAGE_ID.finditer(text):
        out.append(_EMAIL.sub(_mask_email_match, text[last : match.start("ids")]))
        out.append(match.group("ids"))
        last = match.end("ids")
    out.append(_EMAIL.sub(_mask_email_match, text[last:]))
    return "".join(out)


class _Decoded:
    """`text` with its URL-encoded bytes and JSON escapes decoded, and where each decoded
    character came from, so a match in the decoded text is masked in the original one."""

    def __init__(self, text: str) -> None:
        chars: list[str] = []
        starts: list[int] = []
        pos = 0
        for match in _ESCAPE.finditer(text):
            chars.extend(text[pos : match.start()])
            starts.extend(range(pos, match.start()))
            chars.append(_unescape(match.group()))
            starts.append(match.start())
            pos = match.end()
        chars.extend(text[pos:])
        starts.extend(range(pos, len(text)))
        starts.append(len(text))
        self.text = "".join(chars)
        self.starts = starts

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Where the decoded characters `start` to `end` are written in the original."""
        return self.starts[start], self.starts[end]


def _unescape(escape: str) -> str:
    if escape.startswith("%"):
        byte = int(escape[1:], 16)
        # A byte of a multi-byte character is no digit, letter or separator of either pattern.
        return chr(byte) if byte < 0x80 else "\ufffd"
    if escape.startswith("\\u"):
        char = chr(int(escape[2:], 16))
        return char if char.isascii() else "\ufffd"
    return _JSON_ESCAPES.get(escape[1], escape[1])


def _mask_encoded(text: str) -> str:
    """Phone numbers and emails that only show once `text` is decoded (``To=%2B62812…``,
    ``budi%40example.com``, ``\n0812…``), masked where they are written.

    Runs after the plain masking, so what is left is only what an escape hid; a ``+`` stays a
    ``+`` (a form's space or a number's plus: `_PHONE` takes either between digits).
    """
    if not _ESCAPE.search(text):
        return text
    view = _Decoded(text)
    decoded = view.text
    edits: list[tuple[int, int, str]] = []
    for match in _PHONE.finditer(decoded):
        rest = match.start("rest")
        digits = [i for i in range(rest, match.end()) if decoded[i].isdigit()]
        for i in digits[_PHONE_HEAD : len(digits) - _PHONE_TAIL]:
            edits.append((*view.span(i, i + 1), "*"))
    protected = [m.span("ids") for m in _MESSAGE_ID.finditer(decoded)]
    for match in _EMAIL.finditer(decoded):
        if any(start <= match.start() < end for start, end in protected):
            continue
        at = decoded.index("@", match.start())
        edits.append((*view.span(match.start() + 1, at), MASK))
    out: list[str] = []
    last = 0
    for start, end, replacement in sorted(edits):
        if start < last:
            continue
        out.append(text[last:start])
        out.append(replacement)
        last = end
    out.append(text[last:])
    return "".join(out)
