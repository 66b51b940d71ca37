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
