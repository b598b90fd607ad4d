"""Database URLs (SQLAlchemy's form) parsed into what a backend needs; pure, no drivers.

``sqlite:///relative.db`` · ``sqlite:////absolute/path.db`` ·
``mssql+pyodbc://user:pass@host:1433/db?driver=ODBC+Driver+18+for+SQL+Server&…`` ·
``postgresql+pyodbc://user@host:5432/db?driver=PostgreSQL+Unicode`` ·
``…+pyodbc:///?odbc_connect=<url-encoded ODBC connection string>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote_plus, unquote, unquote_plus, urlsplit

from synccli.errors import ConfigError

#: The ODBC driver used when the URL names none.
DEFAULT_DRIVERS = {
    "mssql": "ODBC Driver 18 for SQL Server",
    "postgresql": "PostgreSQL Unicode",
}
DEFAULT_PORTS = {"mssql": 1433, "postgresql": 5432}
#: Driver attributes added unless the URL sets them. psqlODBC otherwise wraps every statement
#: in a transaction in a SAVEPOINT and prepares/deallocates a server-side plan for each, which
#: triples the round trips of the write path; the engine rolls back itself on any error, and
#: the driver quotes parameters client-side.
DEFAULT_ATTRIBUTES = {
    "mssql": {},
    "postgresql": {"Protocol": "7.4-0", "UseServerSidePrepare": "0"},
}

_USERINFO_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")
_ODBC_PASSWORD = re.compile(r"((?:PWD|Password)=)(\{[^}]*\}|[^;&]*)", re.IGNORECASE)
_ODBC_CONNECT = re.compile(r"(odbc_connect=)([^&]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with every password replaced by ``***`` (userinfo and ODBC ``PWD=``, also
    inside a URL-encoded ``odbc_connect=``)."""
    url = _ODBC_CONNECT.sub(
        lambda m: m.group(1) + quote_plus(_ODBC_PASSWORD.sub(r"\1***", unquote_plus(m.group(2)))),
        url,
    )
    return _ODBC_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", url))


_ODBC_SCHEMES = {"mssql+pyodbc": "mssql", "postgresql+pyodbc": "postgresql"}
_SECRET_KEYS = re.compile(r"^(pwd|password)$", re.IGNORECASE)


def parse_sqlite_url(url: str) -> str:
    """The file path of a ``sqlite:///`` URL."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or not url.lower().startswith("sqlite:///"):
        raise ConfigError(
            f"bad SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////absolute/path.db"
        )
    path = unquote(url[len("sqlite:///") :].split("?", 1)[0])
    if not path or path.endswith("/"):
        raise ConfigError(f"the SQLite URL {url!r} names no file: use sqlite:///PATH.db")
    if path == ":memory:":
        raise ConfigError(
            "sqlite:///:memory: cannot be shared by the server's threads: use a file path"
        )
    return path


@dataclass(frozen=True, slots=True)
class OdbcTarget:
    """An ODBC connection: the dialect, the connection string (holds the password: never log
    it) and the secrets to scrub from any driver message."""

    dialect: str
    connection_string: str
    secrets: tuple[str, ...] = field(default=())


def _braced(value: str) -> str:
    """An ODBC attribute value, braced when it holds characters that would end it."""
    if any(c in value for c in ";{}=") or value != value.strip():
        return "{" + value.replace("}", "}}") + "}"
    return value


def _odbc_secrets(connection_string: str) -> tuple[str, ...]:
    found = []
    for part in re.finditer(r"([^;=]+)=(\{(?:[^}]|\}\})*\}|[^;]*)", connection_string):
        if _SECRET_KEYS.match(part.group(1).strip()):
            value = part.group(2)
            found.append(value)
            if value.startswith("{") and value.endswith("}"):
                found.append(value[1:-1].replace("}}", "}"))
    return tuple(s for s in found if s)


def parse_odbc_url(url: str) -> OdbcTarget:
    """The dialect and ODBC connection string of a ``mssql+pyodbc``/``postgresql+pyodbc``
    URL. Raises ``ConfigError`` naming what is wrong (never the password)."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad database URL {shown!r}: {exc}") from None
    dialect = _ODBC_SCHEMES.get(parts.scheme.lower())
    if dialect is None:
        raise ConfigError(
            f"bad ODBC URL {shown!r}: the scheme must be mssql+pyodbc or postgresql+pyodbc"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    raw = query.pop("odbc_connect", None)
    if raw is not None:
        if not raw.strip():
            raise ConfigError(f"bad ODBC URL {shown!r}: odbc_connect is empty")
        return OdbcTarget(dialect, raw, _odbc_secrets(raw))
    if not parts.hostname:
        raise ConfigError(
            f"bad ODBC URL {shown!r}: it names no host; use {parts.scheme}://USER@HOST:PORT/DB"
            "?driver=… or ?odbc_connect=…"
        )
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ConfigError(f"bad ODBC URL {shown!r}: name one database after the host (…/DB)")
    driver = unquote_plus(query.pop("driver", DEFAULT_DRIVERS[dialect]))
    port = port or DEFAULT_PORTS[dialect]
    server = (
        [("SERVER", f"{parts.hostname},{port}")]
        if dialect == "mssql"
        else [("SERVER", parts.hostname), ("PORT", str(port))]
    )
    attributes = [("DRIVER", driver), *server, ("DATABASE", database)]
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if user:
        attributes.append(("UID", user))
    if password:
        attributes.append(("PWD", password))
    attributes.extend(query.items())
    given = {key.lower() for key, _ in attributes}
    attributes.extend(
        (key, value)
        for key, value in DEFAULT_ATTRIBUTES[dialect].items()
        if key.lower() not in given
    )
    connection_string = ";".join(f"{key}={_braced(value)}" for key, value in attributes)
    secrets = (password, _braced(password)) if password else ()
    return OdbcTarget(dialect, connection_string, secrets)


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret (and any ``PWD=…``) replaced by ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return redact_url(text)
