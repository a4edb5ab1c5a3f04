"""Is a Patient fit to send? FHIR R4 structure, then the FR Core rules it claims.

Structure is checked by `fhir.resources`' R4 (4.0.1) models; FR Core's slices and
invariants by FHIRPath (`fhirpathpy`), compiled once. The rules of FR Core Patient INS apply
only when meta.profile claims it. Each problem names the element and the rule, never a
value: problems go to logs and to the store. Both libraries are imported on first use, so
an engine without a FHIR destination never loads them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any, NamedTuple

from engine.fhir import profiles

Evaluator = Callable[..., Any]

# `extension.where(url = …)`, not `extension(…)`: fhirpathpy's extension() answers only the
# first matching extension, which would hide an attribute written after the status.
_REL = f"extension.where(url = '{profiles.IDENTITY_RELIABILITY}')"
_PLACE = f"extension.where(url = '{profiles.BIRTH_PLACE}')"
_NIR, _NIA, _TEST, _DEMO = (f"urn:oid:1.2.250.1.213.1.4.{n}" for n in (8, 9, 10, 11))
# Read once per resource, then named by the rules: the identity's status and attribute codes,
# whether coded as 2.1.0 does (identityStatus) or as later releases do (comment)...
CODES = (
    f"({_REL}.extension.where(url = '{profiles.IDENTITY_STATUS}').value"
    f" | {_REL}.extension.where(url = '{profiles.COMMENT}').value.coding).code"
)
# ...and the INS identifiers: an INS system, but not the billing NIR (INS-NIR's OID, type NH).
INS = (
    f"identifier.where(system = '{_NIA}' or system = '{_TEST}' or system = '{_DEMO}'"
    f" or (system = '{_NIR}' and type.coding.where(code = 'NH').empty()))"
)


def _slice(code: str, system: str) -> str:
    """An identifier of this INS slice: its type in FR Core's v2-0203, its system, a value."""
    return (
        f"(type.coding.where(system = '{profiles.FR_V2_0203}' and code = '{code}').exists()"
        f" and system = '{system}' and value.exists())"
    )


class Rule(NamedTuple):
    """One FR Core rule: where it applies, its id (FSH invariant or slice), the expression
    that must be true, and what it means."""

    path: str
    rule: str
    expression: str
    text: str


# Every FR Core Patient (FRCorePatientProfile.fsh, extension FSH).
PATIENT_RULES = (
    Rule(
        "Patient.identifier:PI",
        "fr-core-patient PI slice",
        "identifier.where(type.coding.where(code = 'PI').exists())"
        ".all(use.exists() and system.exists() and value.exists())",
        "a local identifier has use, system and value",
    ),
    Rule(
        "Patient.identifier:NSS",
        "fr-core-patient NSS slice",
        "identifier.where(type.coding.where(code = 'NH').exists())"
        f".all(system = '{_NIR}' and use = 'official' and value.exists()"
        f" and type.coding.where(system = '{profiles.FR_V2_0203}').empty())",
        "the billing NIR has the NIR's OID, use official, and no INS type",
    ),
    Rule(
        "Patient.name:officialName",
        "fr-core-patient officialName slice",
        "name.where(use = 'official').all(family.exists() and given.exists())",
        "an official name has family and given",
    ),
    Rule(
        "Patient.extension:identityReliability",
        "fr-core-identity-reliability-1",
        "%codes.where($this = 'FICT' or $this = 'DOUT').exists()"
        " implies %codes.where($this = 'PROV').exists()",
        "a fictive or doubtful identity is provisional",
    ),
    Rule(
        "Patient.extension:identityReliability",
        "fr-core-identity-reliability-2",
        "%codes.where($this = 'FICT').exists() implies %codes.where($this = 'DOUT').empty()",
        "fictive and doubtful never together",
    ),
    Rule(
        "Patient.extension:identityReliability",
        "ins-engine-status",
        "%codes.where($this = 'PROV' or $this = 'VALI' or $this = 'RECUP'"
        " or $this = 'QUAL').count() <= 1",
        "one identity status",
    ),
    Rule(
        "Patient.identifier",
        "ins-engine-ins-only-vali",
        f"%ins.exists() implies (%codes.where($this = 'VALI').exists()"
        f" and %codes.where($this = 'FICT' or $this = 'DOUT').empty()"
        f" and meta.profile.where($this.startsWith('{profiles.PATIENT_INS_PROFILE}|')"
        f" or $this = '{profiles.PATIENT_INS_PROFILE}').exists())",
        "an INS only in a qualified (VALI) identity claiming fr-core-patient-ins",
    ),
)

# FR Core Patient INS (FRCorePatientINSProfile.fsh, 2.1.0), when claimed.
INS_RULES = (
    Rule(
        "Patient.identifier",
        "fr-core-patient-ins identifier 1..*",
        "identifier.exists()",
        "an identifier",
    ),
    Rule(
        "Patient.extension:identityReliability",
        "fr-core-patient-ins identityReliability 1..*",
        f"{_REL}.exists()",
        "an identity reliability",
    ),
    Rule(
        "Patient.extension:birthPlace",
        "fr-core-patient-ins birthPlace 1..1",
        f"{_PLACE}.count() = 1 and {_PLACE}"
        f".value.extension.where(url = '{profiles.ADDRESS_INSEE_CODE}').value.code.exists()",
        "one birth place with its INSEE code",
    ),
    Rule(
        "Patient.gender",
        "fr-core-patient-ins gender 1..1",
        "gender = 'male' or gender = 'female' or gender = 'unknown'",
        "gender male, female or unknown",
    ),
    Rule(
        "Patient.birthDate",
        "fr-core-patient-ins birthDate 1..1",
        "birthDate.exists()",
        "a birth date",
    ),
    Rule(
        "Patient.name:officialName",
        "fr-core-patient-ins officialName 1..1",
        "name.where(use = 'official').count() = 1 and name.where(use = 'official')"
        ".all(given.count() = 1 and extension.where("
        f"url = '{profiles.BIRTH_LIST_GIVEN_NAME}').count() = 1)",
        "one official name: the first birth first name only, and the full list",
    ),
    Rule(
        "Patient.identifier",
        "fr-core-1",
        "%codes.where($this = 'VALI').exists() implies %ins.exists()",
        "a VALI identity has an INS identifier",
    ),
    Rule(
        "Patient.identifier",
        "fr-core-2",
        "%ins.where(use = 'official' or use = 'temp').count() <= 1",
        "one current INS",
    ),
    Rule(
        "Patient.identifier:INS-NIR",
        "fr-core-patient-ins INS slices",
        f"%ins.all(((use = 'official' or use = 'old') and ({_slice('INS-NIR', _NIR)}"
        f" or {_slice('INS-NIR-TEST', _TEST)} or {_slice('INS-NIR-DEMO', _DEMO)}))"
        f" or ((use = 'temp' or use = 'old') and {_slice('INS-NIA', _NIA)}))",
        "an INS has the type, system and use of its slice",
    ),
)


def problems(resource: dict[str, Any]) -> list[str]:
    """[] when `resource` is a valid R4 Patient meeting the FR Core rules it claims; else one
    text per problem: `<element>: <rule> (<what it means>)`, never a value."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        return ["Patient: R4 structure (resourceType Patient)"]
    found = _structure(resource)
    profiles_claimed = (resource.get("meta") or {}).get("profile") or []
    ins = any(
        isinstance(p, str) and p.split("|")[0] == profiles.PATIENT_INS_PROFILE
        for p in profiles_claimed
    )
    rules = PATIENT_RULES + (INS_RULES if ins else ())
    return found + [f"{rule.path}: {rule.rule} ({rule.text})" for rule in _broken(resource, rules)]


def _broken(resource: dict[str, Any], rules: tuple[Rule, ...]) -> list[Rule]:
    """The rules `resource` breaks, in their order, asked of its shape (`_shape`): what
    the rules compare is kept, what they only count is a placeholder. Shapes repeat from one
    patient to the next, so each is evaluated once (FHIRPath in Python costs milliseconds)."""
    shape = _shape(resource)
    return [rules[index] for index in _broken_indexes(json.dumps(shape, sort_keys=True), rules)]


# What the rules compare (kept in a shape); any other text they only test for presence.
_COMPARED = frozenset({"resourceType", "profile", "url", "system", "use", "code", "gender"})


def _shape(value: Any, key: str = "", parent: dict[str, Any] | None = None) -> Any:
    """`value` with every text the rules do not compare replaced by `x` (and the INSEE
    codes too: the rules ask only that one is there)."""
    if isinstance(value, dict):
        return {k: _shape(v, k, value) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(item, key, parent) for item in value]
    if not isinstance(value, str) or not value:
        return value
    insee = parent is not None and parent.get("system") == profiles.INSEE_CODE_SYSTEM
    return value if key in _COMPARED and not insee else "x"


@lru_cache(maxsize=4096)
def _broken_indexes(shape: str, rules: tuple[Rule, ...]) -> tuple[int, ...]:
    """Every rule asked in one FHIRPath evaluation, each answering its index when broken."""
    resource = json.loads(shape)
    codes, ins, every = _compiled(rules)
    try:
        context = {"codes": codes(resource), "ins": ins(resource)}
        return tuple(sorted(every(resource, context)))
    except Exception:  # a resource the expressions cannot walk breaks every rule
        return tuple(range(len(rules)))


def _structure(resource: dict[str, Any]) -> list[str]:
    """FHIR R4 structure, as fhir.resources' model says it: element and error type only."""
    from fhir.resources.patient import Patient
    from pydantic import ValidationError

    try:
        Patient.parse_obj(resource)
    except ValidationError as error:
        return [
            f"Patient.{'.'.join(str(part) for part in e['loc'] if part != '__root__') or '(root)'}"
            f": R4 structure ({e['type']})"
            for e in error.errors()
        ]
    return []


@cache
def _compiled(rules: tuple[Rule, ...]) -> tuple[Evaluator, Evaluator, Evaluator]:
    """CODES, INS, and every rule as `iif(<rule>, {}, <index>)`, united: compiled once."""
    from fhirpathpy import compile as compile_fhirpath
    from fhirpathpy.models import models

    every = " | ".join(f"iif({rule.expression}, {{}}, {index})" for index, rule in enumerate(rules))
    return tuple(  # type: ignore[return-value]
        compile_fhirpath(expression, models["r4"]) for expression in (CODES, INS, every)
    )
