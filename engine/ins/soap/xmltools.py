"""Namespace-tolerant reading of SOAP documents: match elements by local name.

Prefixes and default namespaces vary between INSi answers; local names do not. The parser
refuses entities and network access (a SOAP message never needs either).
"""

from __future__ import annotations

from lxml import etree

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, remove_comments=True, remove_pis=True, huge_tree=False
)


def parse_xml(data: bytes) -> etree._Element:
    """Parse bytes into an element tree; raises `etree.XMLSyntaxError` when not XML."""
    return etree.fromstring(data, parser=_PARSER)


def local_name(element: etree._Element) -> str:
    """The element's name without namespace (string split: cheaper than `etree.QName`)."""
    return str(element.tag).rpartition("}")[2]


def children(element: etree._Element, name: str) -> list[etree._Element]:
    """Direct children called `name`, whatever their namespace."""
    return [child for child in element if isinstance(child.tag, str) and local_name(child) == name]


def child(element: etree._Element | None, *path: str) -> etree._Element | None:
    """The first element along `path` of local names, or None when a step is missing."""
    for name in path:
        if element is None:
            return None
        found = children(element, name)
        element = found[0] if found else None
    return element


def text(element: etree._Element | None, *path: str) -> str | None:
    """Stripped text at `path`, or None when absent or empty."""
    found = child(element, *path)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


def descendant(element: etree._Element, name: str) -> etree._Element | None:
    """The first descendant called `name`, whatever its namespace."""
    for found in element.iter():
        if isinstance(found.tag, str) and local_name(found) == name:
            return found
    return None
