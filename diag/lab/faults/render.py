"""Text for ``diag lab faults`` / ``fault`` / ``heal`` (no logic beyond formatting).

Contract: :func:`fault_table` renders the declared faults as a plain-text table (marking, when a lab
of that name exists, which faults apply to it and which one is active); :func:`outcome_lines`
renders an :class:`~diag.lab.faults.Outcome`.
"""
from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diag.lab import Lab
    from diag.lab.faults import Outcome


def fault_table(lab_name: str | None = None) -> str:
    from diag.lab import faults
    from diag.lab.lab import validate
    from diag.lab.state import LabState

    if lab_name:
        validate(lab_name)
    lab_state = LabState.read(lab_name) if lab_name else None
    active = None
    if lab_state is not None:
        from diag.lab import Lab

        active = faults.active(Lab(lab_state))
    rows = [("fault", "first code", "applies to", "breaks")]
    for f in faults.FAULTS.values():
        mark = ""
        if lab_state is not None:
            mark = ("*" if active and active.name == f.name
                    else "" if f.applies_to(lab_state.cni, lab_state.mode)
                    and lab_state.peering == "address" else "-")
        rows.append((mark + f.name, f.first_code, f.applies, f.breaks))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for row in rows:
        head = "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths))
        wrapped = textwrap.wrap(row[3], 60) or [""]
        lines.append(f"{head}  {wrapped[0]}")
        lines += [" " * (len(head) + 2) + more for more in wrapped[1:]]
    if lab_state is not None:
        lines.append("")
        lines.append(f"lab {lab_name} ({lab_state.cni}, {lab_state.mode}): '-' does not apply"
                     + (f", '*' active ({active.phase})" if active else ", no fault active"))
    lines.append("apply: diag lab fault NAME [--name LAB]   undo: diag lab heal [NAME] [--name LAB]")
    return "\n".join(lines)


def outcome_lines(lab: "Lab", out: "Outcome") -> list[str]:
    from diag.lab import faults

    if out.action == "nothing to heal":
        return [f"lab {lab.name}: no fault active, nothing to heal"]
    fault = faults.FAULTS[out.name]
    head = {"applied": f"fault {out.name} applied and verified in {out.seconds:.1f} s",
            "already active": f"fault {out.name} already active; symptom verified again",
            "healed": f"fault {out.name} healed; healthy state verified in {out.seconds:.1f} s",
            }[out.action]
    lines = [f"lab {lab.name}: {head}"]
    if out.healed_first:
        lines.append(f"  (healed {out.healed_first} first)")
    if out.action != "healed":
        lines.append(f"  injected: {fault.injected_by}")
        lines.append(f"  expected first finding: {fault.first_code}")
    lines.append("  evidence:" if out.action != "healed" else "  healthy:")
    lines += [f"    {line}" for line in out.evidence]
    return lines
