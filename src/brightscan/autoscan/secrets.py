"""Secret handling for autoscan: token validation and password masking in URLs.

One place so every message, log line and repr masks the same way.
"""
from __future__ import annotations

import os
from pathlib import Path

from brightscan.errors import ConfigError

__all__ = ["find_token", "mask_url", "read_token_file", "require_https", "validate_token"]

#: Largest token file read (a token is a few dozen bytes; a wrong path to a big file is refused).
MAX_TOKEN_FILE_BYTES = 4096

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


def read_token_file(path: str | Path, source: str | None = None) -> str:
    """Read a token from a file (a ``--token-file``, a systemd credential), validated.

    One trailing newline (what ``echo`` and editors write) is dropped; anything else that is not
    a valid token is refused by :func:`validate_token`. A file that group or others may read is
    warned about (``chmod 600``), not refused.

    Raises
    ------
    ConfigError
        Missing, unreadable or over :data:`MAX_TOKEN_FILE_BYTES`, or not a valid token; the error
        names the file, never its content.
    """
    import stat
    import warnings

    from brightscan.errors import BrightscanWarning

    path = Path(path)
    source = source or f"token file {path}"
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            raw = handle.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read it ({exc.strerror})") from None
    if len(raw) > MAX_TOKEN_FILE_BYTES:
        raise ConfigError(f"{source}: over {MAX_TOKEN_FILE_BYTES} bytes, not a token file")
    if stat.S_ISREG(mode) and mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(f"{source} may be read by other users (mode {stat.S_IMODE(mode):o}): chmod 600 it",
                      BrightscanWarning, stacklevel=2)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text (value not shown)") from None
    text = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    return validate_token(text, source)


def find_token(env: str, credential: str, file: str | Path | None = None) -> str | None:
    """The token from the first place that has one, validated; ``None`` when none does.

    In order: ``file`` (a ``--token-file``), the environment variable ``env``, the file named by
    ``{env}_FILE``, then systemd's ``$CREDENTIALS_DIRECTORY/{credential}`` (``LoadCredential=``).
    An empty environment variable counts as absent.

    Raises
    ------
    ConfigError
        A place that has a token holds an invalid one (named; the value never is).
    """
    if file is not None:
        return read_token_file(file)
    if os.environ.get(env):
        return validate_token(os.environ[env], env)
    if os.environ.get(f"{env}_FILE"):
        return read_token_file(os.environ[f"{env}_FILE"], f"{env}_FILE ({os.environ[f'{env}_FILE']})")
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory and (Path(directory) / credential).is_file():
        return read_token_file(Path(directory) / credential, f"systemd credential {credential}")
    return None


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
