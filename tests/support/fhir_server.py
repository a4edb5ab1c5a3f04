"""The FHIR R4 server the FHIR destination's tests send to: tests/peers/fhir-server/server.mjs
(medplum's FHIR router over its in-memory repository) in a Node subprocess on loopback.

    server = FhirServer.start()        # about two seconds: loads the R4 definitions
    server.base_url                    # http://127.0.0.1:PORT/fhir/R4
    server.patients("urn:oid:1.2.250.1.213.1.4.8|1234567890123")   # stored Patient resources
    server.reset()                     # empty repository
    server.stop()

A real server rather than a double, because what the destination must get right is FHIR's
own REST semantics: a conditional update creates on no match, updates on one, answers 412 on
several; a bad resource is refused with an OperationOutcome. Its helpers speak plain blocking
HTTP: the server is another process, so calling them from a test's event loop is safe.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.node_peer import Unavailable, start_node_peer, stop_node_peer

__all__ = ["FhirServer", "Unavailable"]

FOLDER = Path(__file__).resolve().parents[1] / "peers" / "fhir-server"
BASE_PATH = "/fhir/R4"
FHIR_JSON = "application/fhir+json"


@dataclass
class Answer:
    """One answer of the server: its status, headers (lower-case names) and JSON body."""

    status: int
    headers: dict[str, str]
    body: Any = None


@dataclass
class FhirServer:
    host: str
    port: int
    _process: subprocess.Popen[bytes] = field(repr=False)

    @classmethod
    def start(cls, port: int = 0) -> FhirServer:
        """Start the server and return once it printed its `listening` line."""
        arguments = ["server.mjs", "--port", str(port), "--base", BASE_PATH]
        process, host, bound = start_node_peer(
            FOLDER, arguments, "@medplum/fhir-router", "FHIR test server"
        )
        return cls(host, bound, process)

    @property
    def pid(self) -> int:
        """The Node process's id (the benchmarks read its CPU time)."""
        return self._process.pid

    @property
    def url(self) -> str:
        """The server's root, where `/$reset` is."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The FHIR base: `{base_url}/Patient?identifier=...`."""
        return f"{self.url}{BASE_PATH}"

    def reset(self) -> None:
        """Empty the repository (every resource and its history)."""
        answer = self._send("POST", f"{self.url}/$reset")
        assert answer.status == 204, answer

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Any FHIR interaction: `path` is below the base (`Patient?identifier=s|v`)."""
        return self._send(method, f"{self.base_url}/{path.lstrip('/')}", body, headers)

    def patients(self, identifier: str | None = None) -> list[dict[str, Any]]:
        """The stored Patient resources, those with `identifier` ("system|value") if given."""
        query = {"_count": "1000"}
        if identifier is not None:
            query["identifier"] = identifier
        answer = self.request("GET", f"Patient?{urllib.parse.urlencode(query)}")
        assert answer.status == 200, answer
        return [entry["resource"] for entry in answer.body.get("entry", [])]

    def stop(self) -> None:
        stop_node_peer(self._process)

    def _send(
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
        request.add_header("Accept", FHIR_JSON)
        if data is not None:
            request.add_header("Content-Type", FHIR_JSON)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return _answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as refused:
            return _answer(refused.code, dict(refused.headers), refused.read())


def _answer(status: int, headers: dict[str, str], text: bytes) -> Answer:
    return Answer(
        status,
        {name.lower(): value for name, value in headers.items()},
        json.loads(text) if text else None,
    )
