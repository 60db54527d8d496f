"""Secrets never reach a log line: a logging filter that redacts AWS credentials and signatures.

fruitlens itself never logs a credential, but libraries (botocore at DEBUG, Py4J errors quoting
a Hadoop configuration, a presigned URL in an exception) can. The filter sits on the root
handlers, so it sees every record that is written, whichever logger emitted it, and the CLI
passes its one-line error messages through `redact()` as well.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from typing import Any

MASK = "[REDACTED]"

# Names of settings whose values are secrets, wherever they appear: Hadoop/Spark keys
# (fs.s3a.secret.key, fs.s3a.session.token, ...password), environment names, JSON keys. An
# access key id is not secret on its own, but it names the principal and pairs with the secret.
SECRET_NAME = re.compile(
    r"(?i)(secret|passw(or)?d|token|credential|private[._-]?key|access[._-]?key|api[._-]?key|"
    r"encryption[._-]?key|signature)"
)

# Environment variables whose values are secrets wherever they show up.
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")

_PATTERNS = (
    # Access key ids: long-term (AKIA) and temporary (ASIA) ones.
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{12,}\b"),
    # key=value / key: value forms of the secret settings (boto, Hadoop, env dumps).
    re.compile(
        r"(?i)((?:aws_secret_access_key|aws_session_token|aws_security_token|"
        r"fs\.s3a\.(?:secret\.key|session\.token|access\.key)|secret_?key|session_?token|"
        r"[\w.-]*passw(?:or)?d|[\w.-]*token)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+"
    ),
    # Presigned URL query strings.
    re.compile(
        r"(?i)((?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|"
        r"AWSAccessKeyId)=)[^&\s\"']+"
    ),
)


def _env_secrets(environ: dict[str, str] | os._Environ[str] | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    values = [environ.get(name, "") for name in SECRET_ENV]
    # Very short values would redact ordinary words; real secrets are long.
    return sorted({value for value in values if len(value) >= 8}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every credential, signature and secret env value replaced by [REDACTED]."""
    for secret in _env_secrets() if secrets is None else secrets:
        text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + MASK, text)
    return text


def scrub(value: Any, name: str = "") -> Any:
    """A copy of a document (JSON-like) with every secret-looking value replaced by [REDACTED]:
    values under a secret-looking key, KEY=VALUE items whose KEY looks secret (spark_conf), and
    whatever `redact` finds in any string. Every document the project writes passes here."""
    if isinstance(value, dict):
        return {key: scrub(item, str(key)) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(item, name) for item in value]
    if name and SECRET_NAME.search(name) and value not in (None, "", [], {}):
        return MASK
    if isinstance(value, str):
        key, equals, _ = value.partition("=")
        if equals and SECRET_NAME.search(key) and " " not in key.strip():
            return f"{key}={MASK}"
        return redact(value)
    return value


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and traceback) with secrets redacted; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not ours
            return True
        record.msg = redact(message)
        record.args = None
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(logger: logging.Logger | None = None) -> RedactingFilter:
    """Put one filter on every handler of `logger` (default: root), once."""
    logger = logger or logging.getLogger()
    chosen = RedactingFilter()
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(chosen)
    return chosen
