"""One representation of classic (non-neural) models, with a reader and a writer per format.

Core ML, PMML and ONNX-ML describe the same few things in three vocabularies: tree
ensembles, linear models, SVMs and a handful of preprocessing steps, wired by named
values. A translator between two of them is a reader into this representation and a
writer out of it, never a pairwise converter.

- `ir` holds the representation (plain dataclasses, no ML library).
- `evaluate` is its reference semantics in numpy: what a reader must reproduce and
  what a writer's runtime must agree with.

Readers and writers live beside them, one module per format (`onnx`, `coreml`, ...).
A reader that meets something it cannot express raises `Unsupported` naming it, so
the user gets exit 4 with the list, never a wrong model.
"""
