"""The INSi SOAP client: one traits search per call, zeep (async) over httpx.

zeep encodes the request from the project's own WSDL (loaded from package files, with a
WSDL-loading HTTP client that refuses any request); the four headers are built explicitly;
the response is read by the tolerant parser in `engine.ins.soap.response` rather than zeep's
strict deserialiser. Network and TLS errors become the package's typed errors here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import uuid
from collections.abc import Callable
from dataclasses import replace

import httpx
import zeep
import zeep.exceptions
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from engine.ins.errors import InsiConfigurationError, InsiResponseError, InsiTechnicalError
from engine.ins.health import endpoint_of
from engine.ins.result import InsiResult
from engine.ins.soap.headers import CallerIdentity, build_headers
from engine.ins.soap.namespaces import BINDING, OPERATION_SEARCH, SIMULATED_HEADER, wsdl_path
from engine.ins.soap.response import parse_response
from engine.ins.traits import TraitsQuery


class _NoNetwork(httpx.BaseTransport):
    """Transport of the WSDL-loading client: loading the WSDL must never reach the network."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise InsiConfigurationError(
            "the INSi WSDL tried to fetch a remote document", code="wsdl_network"
        )


def load_soap_client(http: httpx.AsyncClient) -> zeep.AsyncClient:
    """zeep's async client on the packaged WSDL; raw responses, no external fetches."""
    transport = AsyncTransport(client=http, wsdl_client=httpx.Client(transport=_NoNetwork()))
    settings = zeep.Settings(raw_response=True, forbid_external=True, forbid_dtd=True)
    return zeep.AsyncClient(str(wsdl_path()), transport=transport, settings=settings)


class InsiClient:
    """Sends one `rechercherInsAvecTraitsIdentite` and returns the parsed result."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        caller: CallerIdentity,
        timeout_s: float,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
    ) -> None:
        self._http = http
        self._soap = load_soap_client(http)
        # AsyncTransport resets the client's headers to zeep's User-Agent; say who we are.
        http.headers["User-Agent"] = f"{caller.software_name}/{caller.software_version}"
        self._service = AsyncServiceProxy(
            self._soap, self._soap.wsdl.bindings[BINDING], address=url
        )
        self._caller = caller
        self._url = url
        self._endpoint = endpoint_of(url)  # named in errors: which INSi did not answer
        self._timeout_s = timeout_s
        self._clock = clock
        self._new_id = new_id

    async def search(self, query: TraitsQuery) -> InsiResult:
        """One call; raises `InsiTechnicalError`, `InsiConfigurationError`, `InsiResponseError`."""
        now = self._clock()
        _, headers = build_headers(self._caller, now, self._new_id)
        operation = getattr(self._service, OPERATION_SEARCH)
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await operation(
                    NomNaissance=query.birth_name,
                    Prenom=[query.first_name],
                    Sexe=query.sex,
                    DateNaissance=query.birth_date.isoformat(),
                    LieuNaissance=query.birth_place,
                    _soapheaders=headers,
                )
        except (TimeoutError, httpx.TimeoutException):
            raise InsiTechnicalError(
                f"INSi call to {self._endpoint} timed out", code="timeout"
            ) from None
        except httpx.TransportError as error:
            raise _transport_error(error, self._endpoint, self._url.startswith("https:")) from None
        except zeep.exceptions.Error as error:
            raise InsiResponseError(
                f"SOAP encoding failed ({type(error).__name__})", code="soap_encoding"
            ) from None
        simulated = response.headers.get(SIMULATED_HEADER, "").lower() == "true"
        result = parse_response(response.status_code, response.content, simulated)
        return replace(result, called_at=now)

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()


def _transport_error(
    error: httpx.TransportError, endpoint: str, tls: bool
) -> InsiConfigurationError | InsiTechnicalError:
    """TLS failures are configuration (certificate, CA, CN); the rest is the network."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            reason = getattr(cause, "reason", None) or type(cause).__name__
            return InsiConfigurationError(
                f"TLS with INSi at {endpoint} failed ({reason}): check cert, key, ca", code="tls"
            )
        cause = cause.__cause__ or cause.__context__
    hint = "; a client certificate refused over TLS 1.3 also looks like this" if tls else ""
    return InsiTechnicalError(
        f"INSi unreachable at {endpoint} ({type(error).__name__}{hint})", code="network"
    )
