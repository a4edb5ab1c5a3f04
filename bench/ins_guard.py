"""What the outbound INS guard costs per message, as a ratio to reading the message.

Every message that leaves goes through the guard, so its cost is paid on the hot path. The
baseline is measured in the same run on the same message: decoding and splitting it as the
router does (`engine.routing.router.routed_message`), which every message pays anyway.

    .venv/bin/python bench/ins_guard.py
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.enrich.guard import InsGuard  # noqa: E402
from engine.enrich.guard_settings import InsGuardSettings  # noqa: E402
from engine.hl7.charset import CharsetPolicy  # noqa: E402
from engine.routing.router import routed_message  # noqa: E402

INS = "~275126322074974^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.8&ISO^INS"
MESSAGE = (
    "MSH|^~\\&|PAS|HOSP|EHR|HOSP|20240101120000||ADT^A03^ADT_A03|C001|P|2.5^FRA^2.11|||||FRA|"
    "8859/1\rEVN||20240101120000\rPID|1||IPP001^^^HOSP&1.2.250.1.999.1.1&ISO^PI{ins}||"
    "ADRUN^ZOE^ZOE^^^^L||19751231|F|||^^^^^FRA^BDL^^63220" + "|" * 21 + "VALI\rPV1|1|N\r"
)
CASES = {
    "no INS": MESSAGE.format(ins=""),
    "a VALI INS, checked and kept": MESSAGE.format(ins=INS),
    "a PROV INS, removed": MESSAGE.format(ins=INS).replace("VALI\r", "PROV\r"),
}
NUMBER, REPEAT = 20_000, 5


def per_message(run: Callable[[], object]) -> float:
    """Best of REPEAT runs, seconds per call."""
    return min(timeit.repeat(run, number=NUMBER, repeat=REPEAT)) / NUMBER


def main() -> None:
    guard = InsGuard(InsGuardSettings())
    policy = CharsetPolicy()
    print(f"{'message':32} {'read (µs)':>10} {'read+guard':>11} {'guard/read':>11}")
    for name, text in CASES.items():
        raw = text.encode("latin-1")
        read = per_message(lambda raw=raw: routed_message(0, "r", raw, policy))
        both = per_message(lambda raw=raw: guard(routed_message(0, "r", raw, policy)))
        print(f"{name:32} {read * 1e6:10.1f} {both * 1e6:11.1f} {(both - read) / read:10.2f}x")


if __name__ == "__main__":
    main()
