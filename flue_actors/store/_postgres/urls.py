"""Database URLs: which ones name PostgreSQL, and how to print one without its password."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["POSTGRES_SCHEMES", "is_postgres_url", "redact_text", "redact_url", "split_schema"]

POSTGRES_SCHEMES: Final = ("postgresql", "postgres")
_MASK: Final = "***"
_QUERY_SECRET = re.compile(r"(?i)((?:^|&)(?:password|sslpassword)=)[^&]*")


def is_postgres_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in POSTGRES_SCHEMES and "://" in url


def redact_url(url: str) -> str:
    """``url`` with its password (in the user info or a ``password=`` parameter) masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable database URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{_MASK}@{host}" if has_password else f"{user}@{host}"
    query = _QUERY_SECRET.sub(rf"\g<1>{_MASK}", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secrets(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in ("password", "sslpassword") and value:
            found.append(value)
    return sorted({s for s in found if s}, key=len, reverse=True)


def redact_text(text: str, url: str) -> str:
    """``text`` (a driver's error message, say) with the URL and every password in it masked."""
    text = text.replace(url, redact_url(url))
    for secret in _secrets(url):
        text = text.replace(secret, _MASK)
    return text


def split_schema(url: str) -> tuple[str, str | None]:
    """Take flue's own ``schema`` parameter out of a URL (the driver would send it to the server
    as a setting): ``postgresql://h/db?schema=x`` is ``(postgresql://h/db, "x")``."""
    parts = urlsplit(url)
    if not parts.query:
        return url, None
    kept: list[tuple[str, str]] = []
    schema: str | None = None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    if schema is None:
        return url, None
    return urlunsplit(parts._replace(query=urlencode(kept))), schema
