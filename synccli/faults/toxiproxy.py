"""Drive any Toxiproxy (the real one or ``synccli proxy``) through ``toxiproxy-python``.

``ToxiproxyFaults`` owns a set of proxies named ``{prefix}-g{i}``, one per group of
clients, and never touches any other proxy. Every call is a blocking HTTP request: from
asyncio, call it through ``asyncio.to_thread``. Inputs are validated before anything is
sent, and a change spanning several groups is undone if one group fails, so nothing is
left half-applied. The library's own failures are translated here: connection errors
become ``InfrastructureError``, API refusals ``FaultError``, bad input ``ConfigError``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

from toxiproxy import Proxy, Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from synccli.errors import ConfigError, FaultError, InfrastructureError
from synccli.faults.kinds import FaultKind, fault_kinds

T = TypeVar("T")

# toxiproxy-python keeps the server address in class attributes: calls from several
# threads (asyncio.to_thread) must not interleave setting them and using them.
_CLIENT_LOCK = threading.Lock()

STREAMS = ("upstream", "downstream")

#: Toxiproxy's pass-through toxic: no attributes, and no fault kind of its own.
NOOP = "noop"


def _toxic_kinds() -> dict[str, FaultKind]:
    return {name: kind for name, kind in fault_kinds().items() if kind.toxic}


def validate_toxic(
    type: str, stream: str, attributes: Mapping[str, Any], toxicity: float
) -> dict[str, Any]:
    """The attributes to send (defaults filled, from the fault-kind registry), or
    ``ConfigError`` naming the first bad field."""
    kinds = _toxic_kinds()
    if type not in kinds and type != NOOP:
        known = ", ".join(sorted([*kinds, NOOP]))
        raise ConfigError(f"unknown toxic type {type!r}: use one of {known}")
    if stream not in STREAMS:
        raise ConfigError(f"toxic stream must be 'upstream' or 'downstream', not {stream!r}")
    if isinstance(toxicity, bool) or not isinstance(toxicity, int | float):
        raise ConfigError(f"toxicity must be a number from 0 to 1, not {toxicity!r}")
    if not 0.0 <= toxicity <= 1.0:
        raise ConfigError(f"toxicity must be from 0 to 1, not {toxicity}")
    kind = kinds.get(type)
    allowed = kind.attr_names if kind is not None else []
    for key in attributes:
        if key not in allowed:
            listed = ", ".join(allowed) or "none"
            raise ConfigError(f"{type} toxic has no attribute {key!r} (allowed: {listed})")
    if kind is None:
        return {}
    values, problems = kind.resolve(attributes)
    if problems:
        key, problem = problems[0]
        raise ConfigError(f"{type} toxic attribute {key!r} {problem}")
    return values


class ToxiproxyFaults:
    """The proxies of one run on one Toxiproxy, and the toxics applied to them."""

    def __init__(self, url: str, prefix: str = "synccli") -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(f"Toxiproxy URL {url!r} must look like http://HOST:PORT")
        self.url = url.rstrip("/")
        self.prefix = prefix
        self._host = parts.hostname
        self._port = parts.port or 8474
        self._proxies: list[Proxy] = []
        self._names = itertools.count(1)

    @property
    def proxy_names(self) -> list[str]:
        """The names of the proxies this object created, by group."""
        return [proxy.name for proxy in self._proxies]

    def _call(self, what: str, action: Callable[[], T]) -> T:
        try:
            with _CLIENT_LOCK:
                APIConsumer.host = self._host
                APIConsumer.port = self._port
                return action()
        except OSError:  # requests' ConnectionError and Timeout are OSErrors
            raise InfrastructureError(
                f"Toxiproxy at {self.url} is unreachable: start it or omit --toxiproxy"
            ) from None
        except (ProxyExists, NotFound, InvalidToxic) as exc:
            raise FaultError(f"Toxiproxy refused to {what}: {_reason(exc)}") from None
        except KeyError:  # a 500: the client looks for fields the error body lacks
            raise FaultError(f"Toxiproxy failed to {what} (HTTP 500)") from None

    def check(self) -> str:
        """The server's version; ``InfrastructureError`` if it cannot be reached, does not
        answer like a Toxiproxy, or is older than 2.0 (a different toxics API)."""
        try:
            raw: bytes | None = self._call("report its version", Toxiproxy().version)
        except FaultError:
            raise InfrastructureError(
                f"{self.url} does not answer GET /version like a Toxiproxy: "
                "check the --toxiproxy URL"
            ) from None
        if raw is None:
            raise InfrastructureError(
                f"Toxiproxy at {self.url} is unreachable: start it or omit --toxiproxy"
            )
        text = raw.decode(errors="replace").strip()
        try:
            version = str(json.loads(text)["version"])
        except (ValueError, KeyError, TypeError):
            version = text  # before 2.6 the version came as bare text, e.g. "2.1.4"
        if not re.fullmatch(r"v?[\w.+-]{1,40}", version):
            raise InfrastructureError(
                f"{self.url} does not answer GET /version like a Toxiproxy: "
                "check the --toxiproxy URL"
            )
        major = version.lstrip("v").split(".", 1)[0]
        if major.isdigit() and int(major) < 2:
            raise InfrastructureError(
                f"Toxiproxy at {self.url} is version {version}: synccli needs 2.0 or newer"
            )
        return version

    def create_proxies(self, upstream: str, groups: int) -> list[str]:
        """One proxy per group, listening on 127.0.0.1:0; returns the bound listen addresses.

        Refuses (``FaultError``) if a proxy with one of our names exists already; on any
        failure, the proxies created so far are deleted again.
        """
        if groups < 1:
            raise ConfigError(f"the number of proxy groups must be at least 1, not {groups}")
        if self._proxies:
            raise ConfigError("create_proxies was already called: call destroy() first")
        server = Toxiproxy()
        try:
            for index in range(groups):
                name = f"{self.prefix}-g{index}"
                create = partial(server.create, upstream=upstream, name=name, listen="127.0.0.1:0")
                proxy = self._call(f"create proxy {name}", create)
                self._proxies.append(proxy)
        except BaseException:
            self.destroy()
            raise
        return [proxy.listen for proxy in self._proxies]

    def _select(self, group_indexes: Sequence[int]) -> list[Proxy]:
        for index in group_indexes:
            if not 0 <= index < len(self._proxies):
                raise ConfigError(
                    f"proxy group {index} does not exist (there are {len(self._proxies)})"
                )
        return [self._proxies[index] for index in group_indexes]

    def add_toxic(
        self,
        group_indexes: Sequence[int],
        type: str,
        stream: str = "downstream",
        attributes: Mapping[str, Any] | None = None,
        toxicity: float = 1.0,
        name: str | None = None,
    ) -> list[str]:
        """Add the same toxic to each group's proxy; returns its name on each (in order).

        All or nothing: if one group fails, the toxic is removed from the others.
        """
        values = validate_toxic(type, stream, attributes or {}, toxicity)
        proxies = self._select(group_indexes)
        name = name or f"{self.prefix}-{type}-{stream}-{next(self._names)}"
        done: list[Proxy] = []
        try:
            for proxy in proxies:
                add = partial(
                    proxy.add_toxic,
                    name=name,
                    type=type,
                    stream=stream,
                    toxicity=toxicity,
                    attributes=values,
                )
                self._call(f"add toxic {name} to {proxy.name}", add)
                done.append(proxy)
        except BaseException:
            for proxy in done:
                self._quietly(partial(proxy.destroy_toxic, name))
            raise
        return [name] * len(proxies)

    def update_toxic(
        self,
        group_indexes: Sequence[int],
        name: str,
        attributes: Mapping[str, int] | None = None,
        toxicity: float | None = None,
    ) -> None:
        """Change a toxic in place (attributes merge); the client has no call for it."""
        body: dict[str, Any] = {}
        if attributes:
            for key, value in attributes.items():
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ConfigError(f"toxic attribute {key!r} must be an integer >= 0")
            body["attributes"] = dict(attributes)
        if toxicity is not None:
            if not isinstance(toxicity, int | float) or isinstance(toxicity, bool):
                raise ConfigError(f"toxicity must be a number from 0 to 1, not {toxicity!r}")
            if not 0.0 <= toxicity <= 1.0:
                raise ConfigError(f"toxicity must be from 0 to 1, not {toxicity}")
            body["toxicity"] = toxicity
        for proxy in self._select(group_indexes):
            self._patch(f"/proxies/{proxy.name}/toxics/{name}", body)

    def remove_toxic(self, group_indexes: Sequence[int], name: str) -> None:
        """Remove the toxic from each group's proxy; already gone is fine."""
        for proxy in self._select(group_indexes):
            self._ignore_missing(
                f"remove toxic {name} from {proxy.name}",
                partial(proxy.destroy_toxic, name),
            )

    def set_enabled(self, group_indexes: Sequence[int], enabled: bool) -> None:
        """Take the groups' proxies down (refuse and drop connections) or bring them back."""
        for proxy in self._select(group_indexes):
            self._patch(f"/proxies/{proxy.name}", {"enabled": enabled})

    def heal(self) -> None:
        """Remove every toxic of our proxies and enable them again (not ``/reset``,
        which would touch other people's proxies too)."""
        for proxy in self._proxies:
            toxics = self._ignore_missing(f"list toxics of {proxy.name}", proxy.toxics)
            if toxics is None:
                continue
            for toxic_name in toxics:
                self._ignore_missing(
                    f"remove toxic {toxic_name} from {proxy.name}",
                    partial(proxy.destroy_toxic, toxic_name),
                )
            self._ignore_missing(f"enable {proxy.name}", proxy.enable)

    def destroy(self) -> None:
        """Delete the proxies we created (their connections close). Idempotent."""
        proxies, self._proxies = self._proxies, []
        for proxy in proxies:
            self._ignore_missing(f"delete proxy {proxy.name}", proxy.destroy)

    def _ignore_missing(self, what: str, action: Callable[[], T]) -> T | None:
        try:
            return self._call(what, action)
        except FaultError as exc:
            if isinstance(exc.__context__, NotFound):
                return None
            raise

    def _quietly(self, action: Callable[[], object]) -> None:
        # Best effort while already failing: the first error is the one to report.
        with contextlib.suppress(FaultError, InfrastructureError):
            self._call("undo a partial change", action)

    def _patch(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method="PATCH",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30):
                pass
        except urllib.error.HTTPError as exc:
            message = _reason(exc.read())
            raise FaultError(f"Toxiproxy refused PATCH {path}: {message}") from None
        except OSError:
            raise InfrastructureError(
                f"Toxiproxy at {self.url} is unreachable: start it or omit --toxiproxy"
            ) from None


def _reason(error: Exception | bytes) -> str:
    """The ``error`` text of a Toxiproxy error body, or the raw text."""
    raw = error if isinstance(error, bytes) else (error.args[0] if error.args else b"")
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    try:
        return str(json.loads(text)["error"])
    except (ValueError, KeyError, TypeError):
        return text.strip()
