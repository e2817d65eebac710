"""Verification: run the source and the converted model on the same inputs.

Inputs come from `--sample` (.npy or .csv) or are synthesised: for tree models,
values just below, at and just above real split thresholds (where float32
comparisons flip branches), elsewhere values around what the model records of its
training data. All synthetic values are float32-representable, so feeding them to a
float32 runtime changes nothing by itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlconvert.errors import ConversionError, InputError, MlconvertError, UsageError
from mlconvert.predict import CannotRun, Predictor

if TYPE_CHECKING:
    from mlconvert.formats import Source

DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-5
SYNTHETIC_ROWS = 512
SEED = 20261126


@dataclass
class OutputCheck:
    name: str
    max_abs: float | None = None
    max_rel: float | None = None
    agreement: float | None = None  # labels: fraction equal
    ties: int = 0  # label differences where the source's top two classes tie within tolerance
    ok: bool = True

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Verification:
    status: str  # "verified" | "mismatch" | "unverified"
    reason: str = ""
    rows: int = 0
    inputs: str = ""  # "sample FILE" | "synthetic (...)"
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    tolerance_source: str = "default"
    outputs: list[OutputCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what loading the source revealed
    # (inputs, the converted model's outputs): kept to check the written file against
    evidence: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "notes": self.notes,
            "status": self.status,
            "reason": self.reason,
            "rows": self.rows,
            "inputs": self.inputs,
            "atol": self.atol,
            "rtol": self.rtol,
            "tolerance_source": self.tolerance_source,
            "outputs": [o.to_dict() for o in self.outputs],
        }

    @property
    def max_abs(self) -> float | None:
        values = [o.max_abs for o in self.outputs if o.max_abs is not None]
        return max(values) if values else None


def load_sample(path: Path, n_features: int | None, feature_names: list[str] | None = None,
                specs: list[dict] | None = None):
    """A float matrix from .npy or .csv (CSV columns are matched by name where the model has
    names), or {input name: array} from .npz for models with several named inputs, and
    from a .csv for models that take one named column each (`specs`)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"sample file {path} does not exist")
    if specs and path.suffix in (".csv", ".tsv") and all(s.get("shape") == [None, 1] for s in specs):
        return _read_csv_columns(path, specs)
    if path.suffix == ".npz":  # named arrays, one per model input
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    if path.suffix == ".pb":  # ONNX TensorProto files: input_0.pb, input_1.pb... beside each other
        tensors = _read_tensor_protos(path)
        if specs and (len(specs) > 1 or np.ndim(tensors[0][1]) != 2):
            if len(tensors) != len(specs):
                raise UsageError(f"{len(tensors)} tensor file(s) beside {path.name}, the model takes {len(specs)} "
                                 "input(s)", hint="give input_0.pb ... input_N.pb, one per model input")
            names = {s["name"] for s in specs}
            by_name = all(name in names for name, _ in tensors)
            return {(name if by_name else spec["name"]): value for (name, value), spec in zip(tensors, specs)}
        X = tensors[0][1]
    elif path.suffix == ".npy":
        X = np.load(path, allow_pickle=False)
    elif path.suffix in (".csv", ".tsv", ".txt"):
        X = _read_csv(path, n_features, feature_names)
    else:
        raise UsageError(f"sample file {path} must be .npy, .npz, .csv or ONNX TensorProto .pb")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X.reshape(1, -1) if n_features and X.shape[0] == n_features else X.reshape(-1, 1)
    if n_features and X.shape[1] != n_features:
        raise UsageError(
            f"sample {path} has {X.shape[1]} columns, the model takes {n_features} features",
            hint="give a sample with one column per model input feature",
        )
    return X


def _read_tensor_protos(path: Path) -> list[tuple[str, np.ndarray]]:
    """(name, array) of an ONNX TensorProto file, and of its numbered siblings when it is
    one of input_0.pb, input_1.pb... (the layout of ONNX's test data and model zoo)."""
    import re

    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise UsageError("reading .pb samples needs the onnx package", hint="pip install 'mlconvert[classic]'") from exc
    match = re.fullmatch(r"(.*input_)(\d+)\.pb", path.name)
    files = [path]
    if match:
        files = []
        while (path.parent / f"{match.group(1)}{len(files)}.pb").is_file():
            files.append(path.parent / f"{match.group(1)}{len(files)}.pb")
        files = files or [path]
    out = []
    for file in files:
        try:
            tensor = onnx.load_tensor(str(file))
            out.append((tensor.name, numpy_helper.to_array(tensor)))
        except Exception as exc:  # DecodeError, or a TensorProto numpy cannot hold
            raise UsageError(f"sample {file} is not an ONNX TensorProto file: {exc}") from exc
    return out


def _read_csv(path: Path, n_features: int | None, feature_names: list[str] | None) -> np.ndarray:
    import csv

    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh, delimiter="\t" if path.suffix == ".tsv" else ",") if r]
    if not rows:
        raise UsageError(f"sample {path} is empty")

    def numeric(cell: str) -> bool:
        try:
            float(cell)
            return True
        except ValueError:
            return cell.strip() in ("", "NA", "nan", "NaN")

    header = None if all(numeric(c) for c in rows[0]) else rows[0]
    body = rows[1:] if header else rows
    columns = list(range(len(body[0])))
    if header and feature_names and all(n in header for n in feature_names):
        columns = [header.index(n) for n in feature_names]
    else:
        columns = [c for c in columns if all(numeric(r[c]) for r in body)]
        if n_features is not None and len(columns) > n_features:
            columns = columns[:n_features]

    def value(cell: str) -> float:
        cell = cell.strip()
        return float(cell) if cell not in ("", "NA", "nan", "NaN") else np.nan

    return np.array([[value(r[c]) for c in columns] for r in body], dtype=np.float64)


def _read_csv_columns(path: Path, specs: list[dict]) -> dict[str, np.ndarray]:
    import csv

    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t" if path.suffix == ".tsv" else ","))
    missing = [s["name"] for s in specs if not rows or s["name"] not in rows[0]]
    if missing:
        raise UsageError(f"sample {path} has no column {', '.join(missing)}",
                         hint="the model takes the columns " + ", ".join(s["name"] for s in specs))
    out = {}
    for spec in specs:
        values = [r[spec["name"]] for r in rows]
        if spec["dtype"] == "object":
            out[spec["name"]] = np.array(values, dtype=object).reshape(-1, 1)
        else:
            out[spec["name"]] = np.array([float(v) if v.strip() else np.nan for v in values]).reshape(-1, 1)
    return out


def _as_float32_values(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32).astype(np.float64)


def _declared_inputs(specs: list[dict], rows: int) -> tuple[dict[str, np.ndarray], str]:
    """Random values of each declared input's shape and dtype (unknown dims: 8)."""
    rng = np.random.default_rng(SEED)
    out = {}
    for spec in specs:
        dims = list(spec.get("shape") or [None])
        # A batch dimension the model fixes (a signature of shape [1]) is kept as it is.
        batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else rows
        shape = [batch] + [d if isinstance(d, int) and d > 0 else 8 for d in dims[1:]]
        dtype = np.dtype(spec.get("dtype") or "float32")
        if spec.get("values"):  # a categorical column: only the values the model knows
            out[spec["name"]] = rng.choice(np.asarray(spec["values"], dtype=dtype), shape)
        elif "center" in spec:  # a numeric column whose training range is recorded
            out[spec["name"]] = _as_float32_values(rng.normal(spec["center"], spec["scale"] * 1.5, shape)).astype(dtype)
        elif np.issubdtype(dtype, np.integer):
            out[spec["name"]] = rng.integers(0, 8, shape).astype(dtype)
        elif np.issubdtype(dtype, np.bool_):
            out[spec["name"]] = rng.random(shape) < 0.5
        else:
            out[spec["name"]] = rng.normal(size=shape).astype(dtype)
    rows = len(next(iter(out.values()))) if out else rows
    return out, f"synthetic ({rows} rows of random values for {len(specs)} declared input(s))"


def synthetic_inputs(predictor: Predictor, rows: int = SYNTHETIC_ROWS):
    """A float matrix for classic models; a dict of named arrays for models with declared inputs."""
    specs = predictor.input_specs()
    if specs:
        columns = all(s.get("shape") == [None, 1] for s in specs)  # a table's columns: cheap rows
        return _declared_inputs(specs, rows if columns else min(rows, 64))
    n = predictor.n_features
    if not n:
        raise UsageError("cannot synthesise inputs: the model does not record its feature count",
                         hint="pass --sample FILE with representative rows")
    rng = np.random.default_rng(SEED)
    ranges = predictor.ranges()
    categories = predictor.categories()
    thresholds = {f: np.unique(np.asarray(t, dtype=np.float64)) for f, t in predictor.thresholds().items() if t and f < n}
    X = np.empty((rows, n))
    for f in range(n):
        ts = thresholds.get(f)
        if f in categories:
            X[:, f] = rng.choice(categories[f], rows)
        elif ts is not None and len(ts):
            lo, hi = ts.min(), ts.max()
            span = (hi - lo) or max(abs(hi), 1.0)
            base = rng.uniform(lo - 0.25 * span, hi + 0.25 * span, rows)
            # Half the rows sit on a threshold: just below, on, or just above it in float32.
            picked = np.float32(rng.choice(ts, rows))
            side = rng.integers(-1, 2, rows)
            edge = np.where(side < 0, np.nextafter(picked, np.float32(-np.inf)),
                            np.where(side > 0, np.nextafter(picked, np.float32(np.inf)), picked))
            X[:, f] = np.where(rng.random(rows) < 0.5, edge.astype(np.float64), base)
        else:
            center, scale = ranges.get(f, (0.0, 1.0))
            X[:, f] = rng.normal(center, scale * 1.5, rows)
    how = f"synthetic ({rows} rows, {len(thresholds)} features with split thresholds)" if thresholds \
        else f"synthetic ({rows} rows, random around recorded feature ranges)" if ranges \
        else f"synthetic ({rows} rows, standard normal)"
    return _as_float32_values(X), how


def compare(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], atol: float, rtol: float) -> list[OutputCheck]:
    """Every output both sides have, by name; labels must agree, numbers within tolerance."""
    checks = []
    for name in [n for n in expected if n in actual]:
        a, b = np.asarray(expected[name]), np.asarray(actual[name])
        if name == "label":
            checks.append(_compare_labels(a, b, expected.get("probabilities"), atol, rtol))
            continue
        a, b = a.astype(np.float64), b.astype(np.float64)
        if a.shape != b.shape:
            if a.size == b.size:
                b = b.reshape(a.shape)
            else:
                checks.append(OutputCheck(name, ok=False, max_abs=float("inf")))
                continue
        both_nan = np.isnan(a) & np.isnan(b)
        diff = np.where(both_nan, 0.0, np.abs(a - b))
        # Relative to values that are not themselves within atol of zero (a probability of
        # 1e-9 off by 1e-9 is not "100% off").
        rel = np.where(np.abs(a) > atol, diff / np.maximum(np.abs(a), np.finfo(np.float64).tiny), 0.0)
        ok = bool(np.all(diff <= atol + rtol * np.abs(a)) and not np.any(np.isnan(diff)))
        checks.append(OutputCheck(name, max_abs=float(np.nanmax(diff)) if diff.size else 0.0,
                                  max_rel=float(np.nanmax(rel)) if rel.size else 0.0, ok=ok))
    return checks


def _compare_labels(a, b, proba, atol, rtol) -> OutputCheck:
    a_s, b_s = a.astype(str).ravel(), b.astype(str).ravel()
    if a_s.shape != b_s.shape:
        return OutputCheck("label", agreement=0.0, ok=False)
    same = a_s == b_s
    ties = 0
    if proba is not None and not same.all():
        # A label may differ only where the source itself cannot tell the top two apart.
        p = np.sort(np.asarray(proba, dtype=np.float64), axis=1)
        gap = p[:, -1] - p[:, -2] if p.shape[1] > 1 else np.full(len(p), np.inf)
        tie = gap <= 2 * (atol + rtol * p[:, -1])
        ties = int(np.sum(~same & tie))
        same = same | tie
    return OutputCheck("label", agreement=float(np.mean(a_s == b_s)), ties=ties, ok=bool(same.all()))


def _predict(model: Predictor, X, which: str) -> dict:
    """A model's outputs on X; the runtime's own failure on these inputs is a failed step."""
    try:
        return model.predict(X)
    except MlconvertError:
        raise
    except Exception as exc:  # the runtime library rejected the inputs or the model
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ConversionError(f"running the {which} model on the inputs failed: {type(exc).__name__}: {first}",
                              hint="pass --sample FILE with rows the model accepts") from exc


def run(source: Predictor, target: Predictor, X, inputs: str, atol: float, rtol: float,
        tolerance_source: str) -> Verification:
    expected = _predict(source, X, "source")
    actual = _predict(target, X, "converted")
    checks = compare(expected, actual, atol, rtol)
    rows = len(next(iter(X.values()))) if isinstance(X, dict) else len(X)
    result = Verification("verified", rows=rows, inputs=inputs, atol=atol, rtol=rtol,
                          tolerance_source=tolerance_source, outputs=checks)
    result.evidence = (X, actual)
    if not checks:
        result.status, result.reason = "unverified", (
            f"no comparable outputs (source gives {sorted(expected)}, target gives {sorted(actual)})")
    elif not all(c.ok for c in checks):
        bad = ", ".join(c.name for c in checks if not c.ok)
        result.status, result.reason = "mismatch", f"outputs differ beyond tolerance: {bad}"
    return result


# --- between two model files ---


def tolerance(edges, atol: float | None, rtol: float | None, options: dict | None = None) -> tuple[float, float, str]:
    """The tolerance to verify with: the largest an edge on the path declares for these
    options (or the default), unless --atol/--rtol say otherwise; and where it came from."""
    declared = [(e, e.tolerance_for(options)) for e in edges]
    declared = [(e, t) for e, t in declared if t]
    a = max([DEFAULT_ATOL] + [t.atol for _, t in declared])
    r = max([DEFAULT_RTOL] + [t.rtol for _, t in declared])
    source = "; ".join(f"{e.name}: {t.reason}" for e, t in declared) or "default"
    if atol is not None or rtol is not None:
        source = "--atol/--rtol" + (f" (other from {source})" if atol is None or rtol is None else "")
    return (a if atol is None else atol), (r if rtol is None else rtol), source


def _predictor(model: Source, options: dict, which: str) -> Predictor:
    if which == "source":
        return model.format.predictor(model, options)
    try:
        return model.format.predictor(model, options)
    except InputError as exc:
        raise ConversionError(f"the converted model does not load: {exc.message}",
                              hint="this is a converter bug; please report it with the input file") from exc


def verify(source: Source, converted: Source, *, edges=(), sample=None, atol: float | None = None,
           rtol: float | None = None, options: dict | None = None) -> Verification:
    """Run `source` and `converted` on the same inputs (the sample's, else synthetic ones)
    and compare their outputs."""
    options = dict(options or {})
    a, r, how_tolerant = tolerance(edges, atol, rtol, options)

    def unverified(reason: str) -> Verification:
        return Verification("unverified", reason=reason, atol=a, rtol=r, tolerance_source=how_tolerant)

    missing = source.format.cannot_run() or converted.format.cannot_run()
    if missing:
        return unverified(missing)
    try:
        source_model = _predictor(source, options, "source")
        # The source's view goes along: a target that cannot run (Core ML off macOS)
        # still checks its structure against it before saying so.
        target_model = _predictor(converted, {**options, "reference": source_model}, "converted")
    except CannotRun as exc:  # e.g. no Core ML runtime off macOS, after a structural check
        return unverified(str(exc))
    # Old pickles may not record their width; the converted model's declared input does.
    source_model.n_features = source_model.n_features or target_model.n_features
    if sample:
        X = load_sample(Path(sample), source_model.n_features, source_model.feature_names,
                        source_model.input_specs())
        how = f"sample {Path(sample).name}"
    elif not source_model.n_features and not source_model.input_specs():
        return unverified("the model does not record how many features it takes; pass --sample FILE")
    else:
        X, how = synthetic_inputs(source_model)
    result = run(source_model, target_model, X, how, a, r, how_tolerant)
    result.notes = list(source_model.notes)
    return result


def same_outputs(result: Verification, converted: Source, options: dict | None = None) -> bool:
    """Whether `converted` gives exactly the outputs the verified file gave on the same
    inputs: what makes the written file (after provenance was stamped into it) the
    verified one."""
    if result.evidence is None:
        return True  # nothing ran (unverified): nothing to compare
    X, verified = result.evidence
    again = _predict(_predictor(converted, dict(options or {}), "converted"), X, "converted")
    return set(again) == set(verified) and all(
        np.array_equal(np.asarray(again[k]), np.asarray(verified[k]), equal_nan=np.asarray(verified[k]).dtype.kind == "f")
        for k in verified)
