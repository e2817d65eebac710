"""The planner: the cheapest chain of available, applicable edges.

Nodes are (format, flavor) pairs, because what an edge accepts depends on what is
inside the file (a pickle of an XGBClassifier is not a pickle of a Pipeline).
Dijkstra over a graph this small is a few lines; ties break on the edge names so the
same environment always gives the same plan.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from mlconvert.errors import MlconvertError, NoPathError, UsageError
from mlconvert.edges import Edge, all_edges


@dataclass(frozen=True)
class EdgeVerdict:
    """Where an edge stands for one plan: used, usable, or rejected with a reason."""

    edge: str
    source: str
    target: str
    status: str  # "used" | "usable" | "rejected"
    reason: str = ""
    relevant: bool = True  # touches this input's path to the target (what a failure shows without --explain)

    def to_dict(self) -> dict:
        return {"edge": self.edge, "from": self.source, "to": self.target, "status": self.status, "reason": self.reason,
                "relevant": self.relevant}


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


def _leading_to(target: str, edges: list[Edge]) -> set[tuple[str, str]]:
    """The (format, flavor) nodes from which some chain of edges reaches `target`."""
    found: set[tuple[str, str]] = set()
    changed = True
    while changed:
        changed = False
        for edge in edges:
            out = (edge.target, edge.output_flavor)
            if edge.target == target or out in found:
                for flavor in edge.flavors:
                    if (edge.source, flavor) not in found:
                        found.add((edge.source, flavor))
                        changed = True
    return found


def _verdicts(edges: list[Edge], steps: list[Edge], reached: set, failed: dict[str, str],
              target: str | None = None) -> list[EdgeVerdict]:
    verdicts = []
    flavors_at: dict[str, set[str]] = {}
    for fmt, flavor in reached:
        flavors_at.setdefault(fmt, set()).add(flavor)
    toward = _leading_to(target, edges) if target else None
    for edge in edges:
        status, reason = "usable", "not on the cheapest path"
        leads = toward is None or edge.target == target or (edge.target, edge.output_flavor) in toward
        if not leads:
            reason = f"leads to {edge.target}, from which nothing reaches {target}"
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
        relevant = status == "used" or (edge.source in flavors_at and leads)
        verdicts.append(EdgeVerdict(edge.name, edge.source, edge.target, status, reason, relevant))
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
    verdicts = _verdicts(edges, steps, reached, failed, target_format)
    plan = Plan(source_format, source_flavor, target_format, steps, cost, verdicts)
    if not steps:
        message, hint = _why_no_path(source, target_format, via, edges, failed)
        raise NoPathError(message, hint=hint, details={"plan": plan.to_dict()})
    return plan


def _title(format_id: str) -> str:
    from mlconvert import formats

    try:
        return formats.get(format_id).title
    except MlconvertError:  # a format known to the edges only (tests, plugins)
        return format_id


def _why_no_path(source: tuple[str, str], target: str, via: str | None, edges: list[Edge],
                 failed: dict[str, str]) -> tuple[str, str]:
    """The one reason there is no path, in words: what is structurally missing, or what
    to install when installing something would open a path (and only then)."""
    explain = "`mlconvert plan IN OUT --explain` lists every edge and why"
    fmt, flavor = source
    route = f"{fmt} ({flavor}) to {target}" + (f" via {via}" if via else "")
    if failed:
        return f"no conversion path from {route} without the step(s) that failed", explain
    # With every edge installed, would there be a path? Then installing is the answer.
    candidates = edges
    if via:
        first, _, _ = _cheapest(source, via, candidates)
        second = _cheapest((via, first[-1].output_flavor), target, candidates)[0] if first else []
        would = first + second if first and second else []
    else:
        would = _cheapest(source, target, candidates)[0]
    missing = [e for e in would if e.unavailable_reason()]
    if would and missing:
        needs = "; ".join(f"{e.name}: {e.unavailable_reason()}" for e in missing)
        return f"no conversion path from {route} in this environment: {needs}", \
            "install what is named, then `mlconvert doctor` shows the edges available here"
    from_here = [e for e in edges if e.source == fmt]
    into = [e for e in edges if e.target == target]
    if not from_here:
        role = f"{_title(fmt)} is a target format here" if any(e.target == fmt for e in edges) else \
            f"{_title(fmt)} files can only be inspected"
        return f"mlconvert has no converter from {fmt} ({role})", "`mlconvert formats` lists every edge"
    if not into:
        role = f"mlconvert reads {_title(target)} but does not write it" if any(e.source == target for e in edges) \
            else f"{_title(target)} files can only be inspected"
        return f"nothing converts to {target} ({role})", "`mlconvert formats` lists every edge"
    if not any(e.accepts(flavor) for e in from_here):
        takes = ", ".join(sorted({f for e in from_here for f in e.flavors}))
        return (f"no converter takes a {fmt} of flavor {flavor} (they take {takes})",
                "`mlconvert inspect FILE` shows what the file holds")
    if via:  # say which leg has no path
        first = _cheapest(source, via, candidates)[0]
        if not first:
            message, hint = _why_no_path(source, via, None, edges, failed)
        else:
            message, hint = _why_no_path((via, first[-1].output_flavor), target, None, edges, failed)
        return f"no conversion path from {route}: {message}", hint
    direct = [e for e in into if e.source == fmt]
    if direct:
        takes = ", ".join(sorted({f for e in direct for f in e.flavors}))
        return (f"nothing converts {fmt} ({flavor}) to {target}: "
                f"{', '.join(e.name for e in direct)} take(s) {fmt} models of flavor {takes} only", explain)
    sources = []
    for src in sorted({e.source for e in into}):
        taken = {f for e in into if e.source == src for f in e.flavors}
        every = {f for e in edges if e.source == src for f in e.flavors}
        sources.append(src if taken == every else f"{src} models of flavor {', '.join(sorted(taken))}")
    return (f"nothing converts {fmt} ({flavor}) to {target}: {target} is reached only from {', '.join(sources)}",
            explain)
