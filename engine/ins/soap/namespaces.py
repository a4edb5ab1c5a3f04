"""Names and namespaces of the INSi contract, in one place for the client and the simulator."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://www.w3.org/2005/08/addressing"
CTXLPS = "urn:siram:lps:ctxlps"
CTXBAM = "urn:siram:bam:ctxbam"
SIRAM = "urn:siram"
RECSANS = "http://www.cnamts.fr/INSiRecSans"
RESULTAT = "http://www.cnamts.fr/INSiResultat"
WEBSERVICE = "http://www.cnamts.fr/webservice"

ACTION_SEARCH = "urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecTraitsIdentite"
OPERATION_SEARCH = "rechercherInsAvecTraitsIdentite"
BINDING = f"{{{WEBSERVICE}}}ICIRServiceSoap12"
CONTENT_TYPE = "application/soap+xml; charset=utf-8"
SIMULATED_HEADER = "X-INSi-Simulated"
"""HTTP header the simulator adds to every answer, so no client mistakes it for INSi."""


def wsdl_path() -> Path:
    """The packaged WSDL; its schemas sit beside it, so zeep reads only local files."""
    return Path(str(resources.files("engine.ins") / "wsdl" / "insi.wsdl"))


def qname(namespace: str, local: str) -> str:
    """Clark notation, as lxml spells a qualified name."""
    return f"{{{namespace}}}{local}"
