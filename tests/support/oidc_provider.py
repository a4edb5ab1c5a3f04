"""The OpenID Connect provider the console's single sign-on tests sign in at:
tests/peers/oidc-provider/server.mjs (panva's oidc-provider) in a Node subprocess on loopback.

    provider = OidcProvider.start()
    provider.issuer                    # http://127.0.0.1:PORT
    provider.configure(client, {"alice": {"groups": ["ins-operators"]}})
    provider.stop()

Its development login form takes any password for an account the test configured; a consent
page follows. A real provider rather than a double: what the console must get right is the
protocol as a certified provider speaks it (discovery, PKCE, signed ID tokens, its errors).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.node_peer import start_node_peer, stop_node_peer

FOLDER = Path(__file__).resolve().parents[1] / "peers" / "oidc-provider"


@dataclass
class OidcProvider:
    host: str
    port: int
    _process: subprocess.Popen[bytes] = field(repr=False)

    @classmethod
    def start(cls) -> OidcProvider:
        process, host, port = start_node_peer(
            FOLDER, ["server.mjs", "--port", "0"], "oidc-provider", "OpenID test provider"
        )
        return cls(host, port, process)

    @property
    def issuer(self) -> str:
        return f"http://{self.host}:{self.port}"

    def configure(self, client: dict[str, Any], accounts: dict[str, dict[str, Any]]) -> None:
        """A fresh provider with this one client and these accounts (name → claims)."""
        body = json.dumps({"clients": [client], "accounts": accounts}).encode()
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.issuer}/$configure", data=body, method="POST"
        )
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            assert answer.status == 204

    def stop(self) -> None:
        stop_node_peer(self._process)
