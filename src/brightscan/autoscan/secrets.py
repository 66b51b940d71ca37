"""Secret handling for autoscan: token validation and password masking in URLs.

One place so every message, log line and repr masks the same way.
"""
from __future__ import annotations

from brightscan.errors import ConfigError

__all__ = ["mask_url", "require_https", "validate_token"]

_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def validate_token(token: str, source: str = "token") -> str:
    """Return ``token`` if usable as an HTTP header value, else raise.

    Parameters
    ----------
    token : str
        The API token as read (file, environment or config).
    source : str
        Where it came from, named in the error (the token itself never is).

    Returns
    -------
    str
        The token, unchanged.

    Raises
    ------
    ConfigError
        If the token is empty or holds whitespace or control characters.
    """
    if not token:
        raise ConfigError(f"{source}: the token is empty")
    for i, ch in enumerate(token):
        if ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or not ch.isprintable():
            raise ConfigError(f"{source}: the token holds a whitespace or control character "
                              f"at position {i} (value not shown)")
    return token


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Parameters
    ----------
    url : str
        A database or HTTP URL, possibly with ``user:password@``.

    Returns
    -------
    str
        The URL safe to show in a message or log; unparsable input is masked whole
        after the scheme rather than shown.
    """
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - any unparsable URL: show no part that may hold a secret
        scheme, sep, _ = str(url).partition("://")
        return f"{scheme}://***" if sep else "***"


def require_https(url: str, what: str) -> str:
    """Return ``url`` if it is ``https``, or ``http`` to a loopback address; else raise.

    A token sent over plain HTTP to another machine can be read on the way, so only a server on
    this machine (a tunnel, a test server) may be reached without TLS.

    Raises
    ------
    ConfigError
        Naming ``what`` and the URL with any password masked.
    """
    import ipaddress
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    host = (parts.hostname or "").lower()
    try:
        loopback = host in _LOOPBACK_NAMES or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme == "http" and loopback:
        return url
    raise ConfigError(f"{what} {mask_url(url)!r} must be https:// (plain http only to a loopback address)")
