"""Database URL parsing and password redaction."""

from __future__ import annotations

from urllib.parse import quote_plus

import pytest

from synccli.errors import ConfigError
from synccli.store import open_store, redact_url
from synccli.store.urls import parse_odbc_url, parse_sqlite_url, scrub


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///sync.db", "sync.db"),
        ("sqlite:///data/sync.db", "data/sync.db"),
        ("sqlite:////var/lib/sync.db", "/var/lib/sync.db"),
        ("sqlite:///with%20space.db", "with space.db"),
    ],
)
def test_sqlite_paths(url: str, path: str) -> None:
    assert parse_sqlite_url(url) == path


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sqlite://sync.db", "sqlite:///relative.db"),
        ("sqlite:///", "names no file"),
        ("sqlite:////tmp/", "names no file"),
        ("sqlite:///:memory:", "memory"),
        ("postgres://x/y", "sqlite:///relative.db"),
    ],
)
def test_bad_sqlite_urls(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_sqlite_url(url)


def test_mssql_url_becomes_a_connection_string() -> None:
    target = parse_odbc_url(
        "mssql+pyodbc://sa:p%40ss;w0rd@db.example:1433/clinic"
        "?driver=ODBC+Driver+18+for+SQL+Server&TrustServerCertificate=yes"
    )
    assert target.dialect == "mssql"
    assert target.connection_string == (
        "DRIVER=ODBC Driver 18 for SQL Server;SERVER=db.example,1433;DATABASE=clinic;"
        "UID=sa;PWD={p@ss;w0rd};TrustServerCertificate=yes"
    )
    assert "p@ss;w0rd" in target.secrets


def test_postgres_url_defaults_port_and_driver() -> None:
    target = parse_odbc_url("postgresql+pyodbc://postgres@127.0.0.1/clinic")
    assert target.dialect == "postgresql"
    assert target.connection_string == (
        "DRIVER=PostgreSQL Unicode;SERVER=127.0.0.1;PORT=5432;DATABASE=clinic;UID=postgres;"
        "Protocol=7.4-0;UseServerSidePrepare=0"
    )
    tuned = parse_odbc_url("postgresql+pyodbc://u@h/d?UseServerSidePrepare=1")
    assert tuned.connection_string.endswith("UseServerSidePrepare=1;Protocol=7.4-0")
    assert target.secrets == ()


def test_odbc_connect_is_passed_through_and_its_password_is_secret() -> None:
    raw = "DRIVER={PostgreSQL Unicode};SERVER=h;DATABASE=d;UID=u;PWD={s3cr;et}"
    target = parse_odbc_url(f"postgresql+pyodbc:///?odbc_connect={quote_plus(raw)}")
    assert target.connection_string == raw
    assert "s3cr;et" in target.secrets
    assert "s3cr" not in scrub(f"login failed for {raw}", target.secrets)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql+pyodbc://u:pw@h/d", "scheme must be"),
        ("mssql+pyodbc://u:pw@/clinic", "names no host"),
        ("mssql+pyodbc://u:pw@h:99999/clinic", "bad database URL"),
        ("mssql+pyodbc://u:pw@h:port/clinic", "bad database URL"),
        ("postgresql+pyodbc://u:pw@h:5432", "name one database"),
        ("postgresql+pyodbc://u:pw@h:5432/a/b", "name one database"),
        ("postgresql+pyodbc:///?odbc_connect=", "odbc_connect is empty"),
    ],
)
def test_bad_odbc_urls_name_the_problem_without_the_password(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as caught:
        parse_odbc_url(url)
    assert "pw@" not in str(caught.value)


def test_open_store_refuses_unknown_schemes_without_the_password() -> None:
    with pytest.raises(ConfigError, match="unsupported database URL") as caught:
        open_store("oracle://scott:tiger@h/db")
    assert "tiger" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mssql+pyodbc://sa:Secret1@h:1433/d?driver=x", "mssql+pyodbc://sa:***@h:1433/d?driver=x"),
        ("postgresql+pyodbc://postgres@h/d", "postgresql+pyodbc://postgres@h/d"),
        (
            "x:///?odbc_connect=DRIVER%3Dx%3BPWD%3Dsecret",
            "x:///?odbc_connect=DRIVER%3Dx%3BPWD%3D%2A%2A%2A",
        ),
        (
            "x:///?odbc_connect=PWD%3D%7Bs%3Bt%7D%3BUID%3Du&a=1",
            "x:///?odbc_connect=PWD%3D%2A%2A%2A%3BUID%3Du&a=1",
        ),
        ("DRIVER=x;PWD={se;cret};UID=u", "DRIVER=x;PWD=***;UID=u"),
        ("DRIVER=x;Password=abc;UID=u", "DRIVER=x;Password=***;UID=u"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_scrub_removes_literal_password_from_driver_messages() -> None:
    message = "[28000] password authentication failed (password was 'Secret1')"
    assert (
        scrub(message, ("Secret1",))
        == "[28000] password authentication failed (password was '***')"
    )
