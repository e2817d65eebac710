"""The formats the TensorFlow edges (tf2onnx, coremltools) start from, and the flavors
each accepts: a SavedModel Keras wrote or a plain TensorFlow graph."""
from __future__ import annotations

TF_SOURCES = (("keras-h5", {"keras"}), ("keras", {"keras"}), ("savedmodel", {"keras", "tf-graph"}))
