"""What the demo did: one record per step, the payments read from the chain, the table.

`Summary` collects `StepRecord`s as the scenario runs (each one is printed as a line
when it ends) and the facts the end-to-end test checks (`facts`: which peers a
network search reached, how many shards a fork shared, what the assistant answered
before and after loading the adapter). `render` draws the closing table; `to_json`
is the machine-readable form `--json` prints on the last line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from chain import units

__all__ = ["Payment", "StepRecord", "Summary", "format_ether"]


def format_ether(wei: int) -> str:
    """Wei as ether with up to 6 decimals ("0.5 ETH", "-0.000123 ETH")."""
    return units.format_ether(wei, places=6)


@dataclass(frozen=True)
class StepRecord:
    step: str
    who: str
    result: str
    seconds: float
    ok: bool = True


@dataclass(frozen=True)
class Payment:
    """A transfer the chain recorded: `payer` to `payee`, `wei`, and why."""

    payer: str
    payee: str
    wei: int
    what: str


@dataclass
class Summary:
    steps: list[StepRecord] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    balances: dict[str, int] = field(default_factory=dict)  # net change per node, wei
    facts: dict[str, Any] = field(default_factory=dict)
    swarm: str = ""  # which Swarm it ran on: "Swarm dev node" or "real Bee 2.8.1, 3 nodes"
    total_seconds: float = 0.0
    ok: bool = False

    def add(self, record: StepRecord) -> None:
        self.steps.append(record)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "swarm": self.swarm,
            "total_seconds": round(self.total_seconds, 1),
            "steps": [dict(asdict(s), seconds=round(s.seconds, 2)) for s in self.steps],
            "payments": [asdict(p) for p in self.payments],
            "balance_changes_wei": dict(self.balances),
            "facts": self.facts,
        }

    def render(self) -> str:
        """The closing table: steps, then who paid whom, then balance changes."""
        rows = [("step", "who", "result", "seconds")]
        rows += [
            (s.step, s.who, ("" if s.ok else "FAILED: ") + s.result, f"{s.seconds:.1f}")
            for s in self.steps
        ]
        lines = _table(rows, right={3})
        if self.payments:
            lines.append("")
            lines += _table(
                [("payer", "payee", "amount", "for")]
                + [(p.payer, p.payee, format_ether(p.wei), p.what) for p in self.payments],
                right={2},
            )
        if self.balances:
            lines.append("")
            lines.append(
                "balance changes (stake, reward and gas): "
                + ", ".join(f"{who} {format_ether(wei)}" for who, wei in self.balances.items())
            )
        lines.append("")
        status = "done" if self.ok else "FAILED"
        where = f" on {self.swarm}" if self.swarm else ""
        lines.append(f"{status} in {self.total_seconds:.1f} s{where}")
        return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]], *, right: set[int], limit: int = 72) -> list[str]:
    cells = [[c if len(c) <= limit else c[: limit - 3] + "..." for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]

    def line(row: list[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells[1:]]
    return out
