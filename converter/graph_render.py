"""The format graph as a picture: Mermaid or DOT text always, PNG/SVG through Graphviz.

Available edges are drawn solid; the others dashed and grey, labelled with why.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from mlconvert import formats
from mlconvert.errors import UsageError
from mlconvert.edges import all_edges


def _edges() -> list[dict]:
    return [e.to_dict() for e in all_edges()]


def as_data() -> dict:
    """The graph as data: formats are the nodes, edges as in `formats` and `doctor`."""
    return {"formats": [{"id": f.id, "title": f.title} for f in formats.all_formats()], "edges": _edges()}


def _node_id(fmt_id: str) -> str:
    return fmt_id.replace("-", "_")


def mermaid() -> str:
    lines = ["flowchart LR"]
    for fmt in formats.all_formats():
        lines.append(f'    {_node_id(fmt.id)}["{fmt.id}"]')
    unavailable = []
    for i, e in enumerate(_edges()):
        label = e["edge"] if e["available"] else f"{e['edge']}: {e['reason']}"
        label = label.replace('"', "'")
        arrow = "-->" if e["available"] else "-.->"
        lines.append(f'    {_node_id(e["from"])} {arrow}|"{label}"| {_node_id(e["to"])}')
        if not e["available"]:
            unavailable.append(str(i))
    if unavailable:
        lines.append(f"    linkStyle {','.join(unavailable)} stroke:#aaa,color:#999")
    return "\n".join(lines) + "\n"


def dot() -> str:
    lines = ["digraph mlconvert {", "  rankdir=LR;", '  node [shape=box, style=rounded, fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];']
    for fmt in formats.all_formats():
        lines.append(f'  "{fmt.id}" [label="{fmt.id}\\n{fmt.title}"];')
    for e in _edges():
        if e["available"]:
            lines.append(f'  "{e["from"]}" -> "{e["to"]}" [label="{e["edge"]}", color="#1a7f37"];')
        else:
            why = e["reason"].replace('"', "'")
            lines.append(f'  "{e["from"]}" -> "{e["to"]}" [label="{e["edge"]}\\n({why})", style=dashed, '
                         f'color="#aaaaaa", fontcolor="#999999"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


_KINDS = {".dot": "dot", ".gv": "dot", ".png": "png", ".svg": "svg", ".mmd": "mermaid", ".mermaid": "mermaid"}


def kind_for(output: Path | None) -> str:
    """What to write when --format is not given: what -o's extension says, else Mermaid."""
    return _KINDS.get(Path(output).suffix.lower(), "mermaid") if output is not None else "mermaid"


def render(kind: str, output: Path | None) -> str | None:
    """Text for mermaid/dot (written to `output` if given); png/svg need `output` and Graphviz."""
    if kind == "mermaid":
        text = mermaid()
    elif kind == "dot":
        text = dot()
    else:
        if output is None:
            raise UsageError(f"--format {kind} writes a file", hint="give -o FILE")
        exe = shutil.which("dot")
        if exe is None:
            raise UsageError(f"{kind} output needs Graphviz's `dot`, which is not installed",
                             hint="install Graphviz (e.g. apt-get install graphviz), or use --format mermaid or dot")
        tmp = Path(output).with_name(Path(output).name + ".tmp")
        subprocess.run([exe, f"-T{kind}", "-o", str(tmp)], input=dot(), text=True, check=True, capture_output=True)
        tmp.replace(output)
        return None
    if output is not None:
        Path(output).write_text(text)
        return None
    return text
