"""Smaller surprises: graph's format from -o, no moot --architecture note, README and
`formats` agree (transcripts)."""
from __future__ import annotations

import re

import pytest

from conftest import ROOT


@pytest.mark.parametrize("name, start", [("g.dot", "digraph mlconvert {"), ("g.gv", "digraph mlconvert {"),
                                         ("g.mmd", "flowchart LR"), ("g.txt", "flowchart LR")])
def test_graph_format_follows_the_output_extension(cli, tmp_path, name, start):
    r = cli("graph", "-o", tmp_path / name)
    assert r.code == 0, r
    assert (tmp_path / name).read_text().startswith(start)


def test_graph_format_option_still_wins(cli, tmp_path):
    r = cli("graph", "--format", "mermaid", "-o", tmp_path / "g.dot")
    assert r.code == 0 and (tmp_path / "g.dot").read_text().startswith("flowchart LR")


def _readme_extensions() -> dict[str, set[str]]:
    text = (ROOT / "README.md").read_text()
    table = text.split("## Formats", 1)[1].split("\n\n", 2)[1]
    found = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        found[cells[0]] = set(re.findall(r"(?<![\w])\.[a-z0-9]+(?:\.[a-z0-9]+)?", cells[1].split("(")[0]))
    return found


def test_readme_and_formats_agree_on_extensions(cli):
    listed = {f["id"]: set(f["extensions"]) for f in cli("formats", "--json").json["formats"]}
    readme = _readme_extensions()
    assert set(readme) == set(listed)
    for fmt, extensions in readme.items():
        assert extensions <= listed[fmt], (fmt, extensions - listed[fmt])


def test_sample_formats_are_documented():
    readme = (ROOT / "README.md").read_text()
    assert "`--sample FILE` (.npy, .csv or .tsv" in readme


@pytest.mark.slow
@pytest.mark.realworld
def test_no_architecture_note_when_it_was_given(cli, realworld, tmp_path):
    pytest.importorskip("tf2onnx")
    keras = realworld / "keras"
    r = cli(keras / "hls4ml_KERAS_3layer_weights.h5", tmp_path / "m.onnx",
            "--architecture", keras / "hls4ml_KERAS_3layer.json", "--json")
    assert r.code == 0, r
    assert "--architecture" not in r.err
    assert not any("--architecture" in w for w in r.json["source"]["warnings"])
    r = cli(keras / "hls4ml_KERAS_3layer_weights.h5", tmp_path / "n.onnx")
    assert r.code == 3 and "--architecture" in r.err  # without it, the note is the point
