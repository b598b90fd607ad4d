"""An operator's one-off write through a running server (``synccli checkin``)."""

from __future__ import annotations

import asyncio
import ssl
import uuid

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from synccli.client.tls import client_context
from synccli.errors import ConfigError, InfrastructureError, ProtocolError
from synccli.protocol.client_id import with_client_id
from synccli.protocol.messages import Result, UpdateAppointmentState, dumps, parse_server_message

#: The client id ``synccli checkin`` connects as: its writes are recorded as the operator's.
OPERATOR = "operator"


async def update_state(
    url: str,
    appointment_id: str,
    state: str,
    *,
    token: str | None = None,
    ca_file: str | None = None,
    expected_version: int | None = None,
    request_id: str | None = None,
    timeout: float = 10.0,
) -> Result:
    """Send one ``update_appointment_state`` and return the server's ``result`` for it.

    Raises ``InfrastructureError`` when the server cannot be reached or does not answer in
    ``timeout`` seconds, ``ConfigError`` when it refuses the token (or the certificate
    cannot be verified: ``ca_file`` trusts a private CA for a wss:// URL).
    """
    request = UpdateAppointmentState(
        request_id or f"checkin-{uuid.uuid4()}", appointment_id, state, expected_version
    )
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        async with asyncio.timeout(timeout):
            async with connect(
                with_client_id(url, OPERATOR),
                additional_headers=headers,
                compression=None,
                ssl=client_context(url, ca_file),
            ) as ws:
                await ws.send(dumps(request.to_wire()))
                async for frame in ws:
                    message = parse_server_message(frame)
                    if isinstance(message, Result) and message.request_id == request.request_id:
                        return message
    except InvalidStatus as exc:
        if exc.response.status_code == 401:
            raise ConfigError(
                f"the server at {url} refused the token; pass the right --token"
            ) from None
        if exc.response.status_code == 403:
            raise ConfigError(f"the server at {url} refused this client's origin") from None
        raise InfrastructureError(
            f"the server at {url} answered HTTP {exc.response.status_code}; check the URL (…/ws)"
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise ConfigError(
            f"the server at {url} has a certificate this machine does not trust "
            f"({exc.verify_message}); pass its CA with --ca"
        ) from None
    except TimeoutError:
        raise InfrastructureError(
            f"the server at {url} did not answer within {timeout:g}s"
        ) from None
    except (OSError, WebSocketException) as exc:
        raise InfrastructureError(
            f"cannot reach the sync server at {url} ({exc}); is `synccli serve` running?"
        ) from None
    except ProtocolError as exc:
        raise InfrastructureError(f"the server at {url} sent an invalid message: {exc}") from None
    raise InfrastructureError(f"the server at {url} closed the connection without a result")
