"""The planner: the cheapest chain of available, applicable edges.

Nodes are (format, flavor) pairs, because what an edge accepts depends on what is
inside the file (a pickle of an XGBClassifier is not a pickle of a Pipeline).
Dijkstra over a graph this small is a few lines; ties break on the edge names so the
same environment always gives the same plan.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from mlconvert.errors import NoPathError, UsageError
from mlconvert.edges import Edge, all_edges


@dataclass(frozen=True)
class EdgeVerdict:
    """Where an edge stands for one plan: used, usable, or rejected with a reason."""

    edge: str
    source: str
    target: str
    status: str  # "used" | "usable" | "rejected"
    reason: str = ""

    def to_dict(self) -> dict:
        return {"edge": self.edge, "from": self.source, "to": self.target, "status": self.status, "reason": self.reason}


@dataclass
class Plan:
    source_format: str
    source_flavor: str
    target_format: str
    steps: list[Edge]
    cost: float
    verdicts: list[EdgeVerdict] = field(default_factory=list)

    @property
    def rejected(self) -> list[EdgeVerdict]:
        return [v for v in self.verdicts if v.status == "rejected"]

    def describe_steps(self) -> list[dict]:
        return [
            {"edge": e.name, "from": e.source, "to": e.target, "library": e.library, "fidelity": e.fidelity}
            for e in self.steps
        ]

    def to_dict(self) -> dict:
        return {
            "source": {"format": self.source_format, "flavor": self.source_flavor},
            "target": {"format": self.target_format},
            "steps": self.describe_steps(),
            "cost": self.cost,
            "edges": [v.to_dict() for v in self.verdicts],
        }


def _usable(edges: list[Edge], failed: dict[str, str]) -> list[Edge]:
    return [e for e in edges if e.name not in failed and e.unavailable_reason() is None]


def _cheapest(source: tuple[str, str], target: str, edges: list[Edge]) -> tuple[list[Edge], float, set]:
    """Dijkstra from `source` to any node of format `target`, at least one step long.

    Returns (steps, cost, reached nodes); steps is empty when the target is out of reach.
    """
    heap: list = [(0.0, (), source, ())]
    settled: dict[tuple[str, str], float] = {}
    reached = {source}
    while heap:
        cost, names, node, path = heapq.heappop(heap)
        if path and node[0] == target:
            return list(path), cost, reached
        if settled.get(node, float("inf")) <= cost and path:
            continue
        settled[node] = cost
        for edge in edges:
            if edge.source == node[0] and edge.accepts(node[1]):
                nxt = (edge.target, edge.output_flavor)
                if edge in path:
                    continue
                reached.add(nxt)
                heapq.heappush(heap, (cost + edge.cost, names + (edge.name,), nxt, path + (edge,)))
    return [], 0.0, reached


def _verdicts(edges: list[Edge], steps: list[Edge], reached: set, failed: dict[str, str]) -> list[EdgeVerdict]:
    verdicts = []
    flavors_at: dict[str, set[str]] = {}
    for fmt, flavor in reached:
        flavors_at.setdefault(fmt, set()).add(flavor)
    for edge in edges:
        status, reason = "usable", "not on the cheapest path"
        unavailable = edge.unavailable_reason()
        if edge in steps:
            status, reason = "used", ""
        elif edge.name in failed:
            status, reason = "rejected", f"failed in this run: {failed[edge.name]}"
        elif unavailable:
            status, reason = "rejected", unavailable
        elif edge.source not in flavors_at:
            status, reason = "rejected", f"no path reaches {edge.source} from this input"
        elif not any(edge.accepts(f) for f in flavors_at[edge.source]):
            have = ", ".join(sorted(flavors_at[edge.source]))
            want = ", ".join(sorted(edge.flavors))
            status, reason = "rejected", f"accepts {edge.source} models of flavor {want}; this one is {have}"
        verdicts.append(EdgeVerdict(edge.name, edge.source, edge.target, status, reason))
    return verdicts


def find_plan(
    source_format: str,
    source_flavor: str,
    target_format: str,
    *,
    via: str | None = None,
    failed: dict[str, str] | None = None,
    edges: list[Edge] | None = None,
) -> Plan:
    """The cheapest plan, or NoPathError listing every rejected edge and why.

    `failed` maps edges that already failed in this run to their error: they are left
    out, which is how a failed step gets re-planned around.
    """
    failed = dict(failed or {})
    edges = all_edges() if edges is None else edges
    usable = _usable(edges, failed)
    source = (source_format, source_flavor)
    if via:
        if via in (source_format, target_format):
            raise UsageError(f"--via {via} is the source or the target format", hint="name an intermediate format")
        first, c1, reached1 = _cheapest(source, via, usable)
        if first:
            mid = (via, first[-1].output_flavor)
            second, c2, reached2 = _cheapest(mid, target_format, usable)
        else:
            second, c2, reached2 = [], 0.0, set()
        steps, cost, reached = (first + second if first and second else []), c1 + c2, reached1 | reached2
    else:
        steps, cost, reached = _cheapest(source, target_format, usable)
    verdicts = _verdicts(edges, steps, reached, failed)
    plan = Plan(source_format, source_flavor, target_format, steps, cost, verdicts)
    if not steps:
        route = f"{source_format} ({source_flavor}) to {target_format}" + (f" via {via}" if via else "")
        raise NoPathError(
            f"no conversion path from {route} in this environment",
            hint="`mlconvert plan IN OUT --explain` lists every edge and why it was rejected; "
            "`mlconvert doctor` shows what is installed",
            details={"plan": plan.to_dict()},
        )
    return plan
