"""Running a Core ML model for verification, or checking it where it cannot run.

Core ML runs only on macOS. Elsewhere the converted model is checked structurally
against the source (the spec loads with coremltools; input and output names, shapes
and dtypes agree) and then reported unverified with what was checked; `--strict`
turns that into exit 8.
"""
from __future__ import annotations

import platform
from pathlib import Path

from mlconvert.errors import ConversionError

# Core ML multi-array dtypes that carry a source dtype.
_COMPATIBLE = {
    "float32": {"float32", "float16", "float64"},
    "float64": {"float32", "float64"},
    "float16": {"float16", "float32"},
    "int32": {"int32"},
    "int64": {"int32"},
    "int8": {"int32", "int8"},
    "uint8": {"int32"},
}


def _same_dims(source: list | None, coreml: list | None) -> bool:
    """Shapes agree past the batch dimension; unknown source dims accept anything."""
    if not source or not coreml:
        return True
    if len(source) != len(coreml):
        return False
    return all(s is None or s == c for s, c in zip(source[1:], coreml[1:]))


def structural_check(path: Path, reference) -> str:
    """What agrees between the Core ML spec at `path` and the source; raises on a disagreement."""
    from mlconvert.formats import coreml
    from mlconvert.edges.via_coremltools import _import_coremltools

    ct = _import_coremltools()
    try:
        spec = ct.utils.load_spec(str(path))
        ct.models.MLModel(spec, weights_dir=_weights_dir(path), skip_model_load=True)
    except Exception as exc:
        raise ConversionError(f"the converted Core ML model does not load in coremltools: {exc}",
                              hint="this is a converter bug; please report it with the input file") from exc
    description = coreml.describe(Path(path))
    problems, checked = [], []
    got_in = {f["name"]: f for f in description.get("inputs", [])}
    got_out = {f["name"]: f for f in description.get("outputs", [])}
    want_in = reference.input_specs() or [] if reference is not None else []
    want_out = reference.output_specs() if reference is not None and hasattr(reference, "output_specs") else []
    for kind, want, got in (("input", want_in, got_in), ("output", want_out, got_out)):
        if not want:
            continue
        if set(got) != {w["name"] for w in want}:
            problems.append(f"{kind}s are {sorted(got)}, the source has {sorted(w['name'] for w in want)}")
            continue
        for w in want:
            g = got[w["name"]]
            if g.get("type") == "multiArray":
                if not _same_dims(w.get("shape"), g.get("shape")):
                    problems.append(f"{kind} {w['name']} has shape {g.get('shape')}, the source {w.get('shape')}")
                if g.get("dtype") not in _COMPATIBLE.get(str(w.get("dtype")), {str(w.get("dtype"))}):
                    problems.append(f"{kind} {w['name']} is {g.get('dtype')}, the source {w.get('dtype')}")
        checked.append(f"{len(want)} {kind}(s) {', '.join(w['name'] for w in want)}")
    if problems:
        raise ConversionError("the converted Core ML model does not match the source: " + "; ".join(problems),
                              hint="this is a converter bug; please report it with the input file")
    kind = spec.WhichOneof("Type")
    return f"spec loads ({kind}), " + ("; ".join(checked) + " match by name, shape and dtype" if checked
                                       else "no source signature to compare with")


def _weights_dir(path: Path) -> str | None:
    weights = Path(path) / "Data" / "com.apple.CoreML" / "weights"
    return str(weights) if weights.is_dir() else None


def predictor(path: Path, options: dict):
    """A runnable Core ML model on macOS; elsewhere CannotRun after the structural check."""
    from mlconvert.predict import CannotRun

    reference = options.get("reference")
    checked = structural_check(Path(path), reference)
    if platform.system() != "Darwin":
        raise CannotRun(f"no Core ML runtime on this platform; structural check passed: {checked}")
    return _MacPredictor(Path(path), reference)


def _MacPredictor(path: Path, reference):
    import numpy as np

    from mlconvert.edges.via_coremltools import _import_coremltools
    from mlconvert.formats import coreml
    from mlconvert.predict import Predictor, named_inputs

    ct = _import_coremltools()
    description = coreml.describe(path)

    class CoreMLPredictor(Predictor):
        kind = "neural-network"

        def __init__(self):
            self.model = ct.models.MLModel(str(path))
            self.specs = [{"name": f["name"], "dtype": "float32" if f["dtype"] in ("float64", "float16") else f["dtype"],
                           "shape": f.get("shape")} for f in description.get("inputs", [])]

        def input_specs(self):
            return [dict(s) for s in self.specs]

        def predict(self, X):
            feed = named_inputs(X, self.specs)
            rows = len(next(iter(feed.values())))
            outs: dict[str, list] = {}
            for i in range(rows):  # one row at a time: the batch dimension's range is the model's business
                result = self.model.predict({k: np.asarray(v[i: i + 1]).astype(
                    next(s["dtype"] for s in self.specs if s["name"] == k)) for k, v in feed.items()})
                for name, value in result.items():
                    outs.setdefault(name, []).append(np.asarray(value))
            return {k: np.concatenate(v, axis=0) for k, v in outs.items()}

    return CoreMLPredictor()
