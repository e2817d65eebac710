"""Keras's own save and export: .h5 / .keras -> SavedModel, .h5 -> .keras.

The SavedModel is written by Keras's ExportArchive (what `model.export()` uses) with
one `serving_default` signature that takes the model's inputs by name and returns a
dict of its outputs by name, so every later step and verification sees the same names.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from mlconvert.edges import Edge, Requirement, StepContext, register_edge
from mlconvert.errors import ConversionError

if TYPE_CHECKING:
    from mlconvert.formats import Source


def to_savedmodel(source: Source, dst: Path, ctx: StepContext) -> None:
    from mlconvert.formats import _tensorflow

    model = source.model
    serving = _tensorflow.keras_function(model)
    keras = _tensorflow.import_keras()
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serving.function)
    try:
        with _tensorflow.stdout_to_stderr():
            archive.write_out(str(dst), verbose=False)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ConversionError(f"Keras could not export a SavedModel: {type(exc).__name__}: {first}") from exc


def to_keras(source: Source, dst: Path, ctx: StepContext) -> None:
    from mlconvert.formats import _tensorflow

    model = source.model
    # Keras picks the format by the name's ending: write a .keras name, then rename.
    tmp = dst if dst.name.endswith(".keras") else dst.with_name(dst.name + ".keras")
    try:
        with _tensorflow.stdout_to_stderr():
            model.save(str(tmp))
    except Exception as exc:  # Keras's own save refused the model
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ConversionError(f"Keras could not save a .keras file: {type(exc).__name__}: {first}") from exc
    if tmp != dst:
        os.replace(tmp, dst)


_REQUIRES = (Requirement("tensorflow", "2.13", extra="tf"), Requirement("keras", "3.0", extra="tf"))

for source in ("keras-h5", "keras"):
    register_edge(Edge(
        name=f"keras-export-{source}" if source != "keras" else "keras-export",
        source=source, target="savedmodel", flavors=frozenset({"keras"}), output_flavor="tf-graph",
        run=to_savedmodel, library="keras", requires=_REQUIRES,
        notes="Keras's ExportArchive: serving_default with named inputs and a dict of named outputs",
    ))
register_edge(Edge(
    name="keras-resave", source="keras-h5", target="keras", flavors=frozenset({"keras"}), output_flavor="keras",
    run=to_keras, library="keras", requires=_REQUIRES,
    notes="legacy HDF5 to the Keras 3 .keras archive",
))
