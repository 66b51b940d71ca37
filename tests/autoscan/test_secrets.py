"""Token validation and URL masking (issue 23, item 3)."""
import pytest

from brightscan.autoscan.secrets import mask_url, validate_token
from brightscan.errors import ConfigError

SECRET = "s3cr3t-T0ken"


@pytest.mark.parametrize("bad", [SECRET + "\n", " " + SECRET, SECRET[:4] + "\t" + SECRET[4:], SECRET + "\x00", SECRET + "\x7f"])
def test_bad_token_rejected_without_showing_it(bad):
    with pytest.raises(ConfigError) as err:
        validate_token(bad, source="BRIGHTSCAN_SKYPORTAL_TOKEN")
    assert SECRET not in str(err.value) and SECRET[:4] in bad
    assert "BRIGHTSCAN_SKYPORTAL_TOKEN" in str(err.value)


def test_empty_token_rejected():
    with pytest.raises(ConfigError):
        validate_token("")


def test_good_token_passes():
    assert validate_token(SECRET) == SECRET


@pytest.mark.parametrize("url", ["postgresql://bob:hunter2pw@db.example:5432/auto",
                                 "postgresql+psycopg://bob:hunter2pw@localhost/auto"])
def test_mask_url_hides_password(url):
    out = mask_url(url)
    assert "hunter2pw" not in out and "bob" in out and "***" in out


def test_mask_url_keeps_sqlite_path():
    assert mask_url("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"


def test_mask_url_unparsable_shows_nothing_after_scheme():
    out = mask_url("weird://bob:hunter2pw@[bad")
    assert "hunter2pw" not in out


# --- tokens from files: --token-file, *_TOKEN_FILE, systemd LoadCredential= (issue 23) ---------

def _clean_env(monkeypatch):
    for name in ("BRIGHTSCAN_SERVE_TOKEN", "BRIGHTSCAN_SERVE_TOKEN_FILE", "BRIGHTSCAN_SKYPORTAL_TOKEN",
                 "BRIGHTSCAN_SKYPORTAL_TOKEN_FILE", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("content", [SECRET, SECRET + "\n", SECRET + "\r\n"])
def test_token_file_read_with_its_one_trailing_newline_dropped(tmp_path, content):
    from brightscan.autoscan.secrets import read_token_file

    path = tmp_path / "token"
    path.write_bytes(content.encode())
    path.chmod(0o600)
    assert read_token_file(path) == SECRET


@pytest.mark.parametrize("content", [SECRET + "\n\n", " " + SECRET, "", SECRET + "\x00", "\n"])
def test_bad_token_file_refused_naming_the_file_never_the_value(tmp_path, content):
    from brightscan.autoscan.secrets import read_token_file

    path = tmp_path / "token"
    path.write_bytes(content.encode())
    path.chmod(0o600)
    with pytest.raises(ConfigError) as err:
        read_token_file(path)
    assert str(path) in str(err.value) and SECRET not in str(err.value)


def test_token_file_missing_big_or_shared_is_named(tmp_path):
    from brightscan.autoscan.secrets import MAX_TOKEN_FILE_BYTES, read_token_file
    from brightscan.errors import BrightscanWarning

    with pytest.raises(ConfigError, match="cannot read it"):
        read_token_file(tmp_path / "absent")
    big = tmp_path / "big"
    big.write_bytes(b"a" * (MAX_TOKEN_FILE_BYTES + 1))
    with pytest.raises(ConfigError, match="not a token file"):
        read_token_file(big)
    shared = tmp_path / "shared"
    shared.write_text(SECRET)
    shared.chmod(0o644)
    with pytest.warns(BrightscanWarning, match="chmod 600") as seen:
        assert read_token_file(shared) == SECRET
    assert SECRET not in str(seen[0].message)


def test_find_token_order_file_env_env_file_then_systemd_credentials(tmp_path, monkeypatch):
    from brightscan.autoscan.secrets import find_token

    _clean_env(monkeypatch)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "serve-token").write_text("from-credentials\n")
    (creds / "serve-token").chmod(0o400)
    named = tmp_path / "named"
    named.write_text("from-env-file\n")
    named.chmod(0o600)
    explicit = tmp_path / "explicit"
    explicit.write_text("from-option")
    explicit.chmod(0o600)
    assert find_token("BRIGHTSCAN_SERVE_TOKEN", "serve-token") is None
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert find_token("BRIGHTSCAN_SERVE_TOKEN", "serve-token") == "from-credentials"
    assert find_token("BRIGHTSCAN_SERVE_TOKEN", "other-name") is None
    monkeypatch.setenv("BRIGHTSCAN_SERVE_TOKEN_FILE", str(named))
    assert find_token("BRIGHTSCAN_SERVE_TOKEN", "serve-token") == "from-env-file"
    monkeypatch.setenv("BRIGHTSCAN_SERVE_TOKEN", "")  # empty counts as absent
    assert find_token("BRIGHTSCAN_SERVE_TOKEN", "serve-token") == "from-env-file"
    monkeypatch.setenv("BRIGHTSCAN_SERVE_TOKEN", "from-env")
    assert find_token("BRIGHTSCAN_SERVE_TOKEN", "serve-token") == "from-env"
    assert find_token("BRIGHTSCAN_SERVE_TOKEN", "serve-token", explicit) == "from-option"


def test_skyportal_token_from_systemd_credentials(tmp_path, monkeypatch):
    """``LoadCredential=skyportal-token:/etc/brightscan/skyportal-token`` in the unit is enough."""
    from brightscan.autoscan.config import load_config

    _clean_env(monkeypatch)
    (tmp_path / "skyportal-token").write_text(SECRET + "\n")
    (tmp_path / "skyportal-token").chmod(0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = load_config(None)
    assert config.sink.skyportal.token == SECRET and SECRET not in repr(config)
    (tmp_path / "skyportal-token").chmod(0o600)
    (tmp_path / "skyportal-token").write_text(SECRET + " trailing\n")
    with pytest.raises(ConfigError, match="systemd credential skyportal-token") as err:
        load_config(None)
    assert SECRET not in str(err.value)
