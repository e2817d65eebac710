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
    reference: str = "source model"  # what the outputs were compared with (--expected: recorded predictions)
    expected: dict | None = None  # --expected: its file, its checks, and the live comparison
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
            "reference": self.reference,
            **({"expected": self.expected} if self.expected else {}),
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
    """A float matrix for classic models; a dict of named arrays for models with declared inputs.

    For a classic model the columns follow what the model records: a categorical feature
    takes its real categories, plus one value it never saw and, where the model has a
    direction for them, missing values; a feature with split thresholds takes values just
    below, on and just above them (and around them); others values around their recorded
    range. Missing values go only where the model routes them (XGBoost, LightGBM,
    HistGradientBoosting, trees trained with missing values)."""
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
    categories = {f: c for f, c in predictor.categories().items() if f < n and len(c)}
    missing = {f for f in predictor.missing_features() if f < n}
    closed = predictor.closed_features()
    thresholds = {f: np.unique(np.asarray(t, dtype=np.float64)) for f, t in predictor.thresholds().items()
                  if len(t) and f < n and f not in categories}
    X = np.empty((rows, n))
    for f in range(n):
        ts = thresholds.get(f)
        if f in categories:
            known = np.asarray(sorted(categories[f]), dtype=np.float64)
            X[:, f] = rng.choice(known, rows)
            if f not in closed:  # one value the model never saw (the next code after its categories)
                X[rng.random(rows) < 1 / 16, f] = float(np.floor(known.max())) + 1.0
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
        if f in missing:
            X[rng.random(rows) < 1 / 16, f] = np.nan
    parts = [f"{len(thresholds)} features with split thresholds"] if thresholds else []
    if categories:
        unseen = ", one unseen" if set(categories) - closed else ""
        parts.append(f"{len(categories)} categorical (their categories{unseen})")
    if missing:
        parts.append(f"missing values in {len(missing)}")
    how = f"synthetic ({rows} rows, {', '.join(parts)})" if parts \
        else f"synthetic ({rows} rows, random around recorded feature ranges)" if ranges \
        else f"synthetic ({rows} rows, standard normal)"
    return _as_float32_values(X), how


def structure(source: Predictor, target: Predictor, expected: dict, actual: dict) -> list[str]:
    """How the converted model's outputs fail to correspond to the source's (kinds,
    outputs, class count and labels, widths), checked before any number is compared."""
    out = []
    # What each side is, by what it outputs (a binary:logitraw booster is a "classifier"
    # whose predictions are raw scores).
    kinds = ["classifier" if "label" in o else "regressor" if "value" in o else None for o in (expected, actual)]
    if None not in kinds and kinds[0] != kinds[1]:
        out.append(f"the source is a {kinds[0]} (it gives {', '.join(sorted(expected))}), the converted model "
                   f"a {kinds[1]} (it gives {', '.join(sorted(actual))})")
        return out
    for name in ("label", "probabilities", "value"):
        if name in expected and name not in actual:
            out.append(f"the converted model gives no {name!r} output (it gives {', '.join(sorted(actual)) or 'none'})")
    for name in ("probabilities", "value"):
        if name in expected and name in actual:
            a, b = np.asarray(expected[name]), np.asarray(actual[name])
            wa, wb = (a.shape[1] if a.ndim == 2 else 1), (b.shape[1] if b.ndim == 2 else 1)
            if wa != wb or len(a) != len(b):
                what = "classes" if name == "probabilities" else "columns"
                out.append(f"{name}: {wa} {what} in the source, {wb} in the converted model")
    if "label" in expected and "label" in actual:
        a, b = np.asarray(expected["label"]), np.asarray(actual["label"])
        if (a.dtype.kind in "OUS") != (b.dtype.kind in "OUS") and not _same_as_text(a, b):
            out.append(f"labels are {_label_kind(a)} in the source, {_label_kind(b)} in the converted model")
    return out


def _label_kind(a) -> str:
    return "strings" if a.dtype.kind in "OUS" else "numbers"


def _same_as_text(a, b) -> bool:
    """String labels "1", "2" against numeric 1, 2 still name the same classes."""
    try:
        return set(np.asarray(a, dtype=np.float64).ravel()) == set(np.asarray(b, dtype=np.float64).ravel())
    except (TypeError, ValueError):
        return False


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


def _label_keys(a):
    """Labels as comparable keys: numbers as numbers (1.0 is class 1), others as text."""
    try:
        return np.asarray(a, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return a.astype(str).ravel()


def _compare_labels(a, b, proba, atol, rtol) -> OutputCheck:
    a_s, b_s = _label_keys(a), _label_keys(b)
    if a_s.dtype != b_s.dtype:
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
    rows = len(next(iter(X.values()))) if isinstance(X, dict) else len(X)
    # Classic models (one float matrix in; labels, probabilities or values out) must
    # correspond output for output: a converted model that does not is wrong, never
    # "unverified".
    classic = source.kind != "neural-network" and source.input_specs() is None
    differs = structure(source, target, expected, actual) if classic else []
    if differs:
        result = Verification("mismatch", reason="outputs do not correspond: " + "; ".join(differs), rows=rows,
                              inputs=inputs, atol=atol, rtol=rtol, tolerance_source=tolerance_source)
        result.evidence = (X, actual)
        return result
    checks = compare(expected, actual, atol, rtol)
    result = Verification("verified", rows=rows, inputs=inputs, atol=atol, rtol=rtol,
                          tolerance_source=tolerance_source, outputs=checks)
    result.evidence = (X, actual)
    if not checks:
        reason = f"no comparable outputs (source gives {sorted(expected)}, target gives {sorted(actual)})"
        result.status, result.reason = ("mismatch", "outputs do not correspond: " + reason) if classic \
            else ("unverified", reason)
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
           rtol: float | None = None, options: dict | None = None, expected=None) -> Verification:
    """Run `source` and `converted` on the same inputs (the sample's, else synthetic ones)
    and compare their outputs; with `expected`, the converted model's outputs are also
    compared with predictions recorded where the model was made, and those decide."""
    if expected is not None and not sample:
        raise UsageError("--expected needs --sample: the rows the expected predictions were made for")
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
    try:
        result = run(source_model, target_model, X, how, a, r, how_tolerant)
    except ConversionError as exc:
        if expected is None or "source model" not in exc.message:
            raise
        # The source does not run here any more; the recorded predictions still judge the output.
        rows = len(next(iter(X.values()))) if isinstance(X, dict) else len(X)
        result = Verification("unverified", reason=exc.message, rows=rows, inputs=how, atol=a, rtol=r,
                              tolerance_source=how_tolerant)
        result.evidence = (X, _predict(target_model, X, "converted"))
    result.notes = list(source_model.notes)
    if expected is not None:
        check_expected(result, expected)
    elif getattr(source_model, "recorded", None) is not None:
        check_recorded(result, target_model, source_model.recorded())
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


# --- against predictions recorded where the model was made (--expected) ---

# Column names that hold a predicted label (classifiers) or value (regressors).
_TARGET_COLUMNS = ("label", "_target", "target", "prediction", "predicted", "predict", "y", "class", "value", "yhat")
_PROBABILITY_PREFIXES = ("probability(", "probability_", "proba_", "prob_", "p_", "probability:")


def _read_expected_csv(path: Path) -> dict[str, np.ndarray] | list[np.ndarray]:
    """Columns matched by name: a label/value column, probability columns (in file order);
    a file without a header is one array."""
    import csv

    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh, delimiter="\t" if path.suffix == ".tsv" else ",") if r]
    if not rows:
        raise UsageError(f"expected file {path} is empty")

    def number(cell: str) -> bool:
        try:
            float(cell)
            return True
        except ValueError:
            return False

    if all(number(c) for c in rows[0]):  # no header
        arr = np.array([[float(c) for c in r] for r in rows])
        return [arr[:, 0] if arr.shape[1] == 1 else arr]
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    lower = [h.lower() for h in header]
    out: dict[str, np.ndarray] = {}
    target = next((i for name in _TARGET_COLUMNS for i, h in enumerate(lower) if h == name), None)
    if target is not None:
        cells = [r[target] for r in body]
        out["target"] = np.array([float(c) for c in cells]) if all(number(c) for c in cells) else np.array(cells)
    proba = [i for i, h in enumerate(lower) if h.startswith(_PROBABILITY_PREFIXES)]
    if proba:
        try:
            out["probabilities"] = np.array([[float(r[i]) for i in proba] for r in body])
        except (ValueError, IndexError) as exc:
            raise UsageError(f"expected file {path}: a probability column holds a cell that is not a number "
                             f"({exc})") from None
    if not out:
        raise UsageError(f"expected file {path} has no column named for a prediction",
                         hint="name the columns label (or value, prediction, _target) and probability(<class>) ...")
    return out


def _read_expected_arrays(path: Path) -> dict[str, np.ndarray] | list[np.ndarray]:
    if path.is_dir():  # an ONNX test data set: output_0.pb, output_1.pb, ...
        files = sorted(path.glob("output_*.pb"), key=lambda p: int(p.stem.split("_")[-1] or 0))
        if not files:
            raise UsageError(f"{path} holds no output_N.pb files")
        return [_read_tensor_proto(f) for f in files]
    if path.suffix == ".pb":
        return [_read_tensor_proto(path)]
    if path.suffix == ".npy":
        return [np.load(path, allow_pickle=False)]
    if path.suffix in (".csv", ".tsv", ".txt"):
        return _read_expected_csv(path)
    if path.suffix in (".pkl", ".pickle", ".joblib"):
        # Scanned and loaded like any pickle, without --trust: numbers only (numpy arrays, lists).
        from mlconvert.formats._pickle_load import load_pickle

        obj = load_pickle(path, trust=False).obj
        return [np.asarray(a) for a in obj] if isinstance(obj, (list, tuple)) else [np.asarray(obj)]
    raise UsageError(f"expected file {path} must be .csv, .npy, .pkl, an ONNX output_N.pb or a folder of them")


def _read_tensor_proto(path: Path) -> np.ndarray:
    from onnx import TensorProto, numpy_helper

    tensor = TensorProto()
    try:
        tensor.ParseFromString(path.read_bytes())
        return numpy_helper.to_array(tensor)
    except Exception as exc:
        raise UsageError(f"{path} is not an ONNX TensorProto: {exc}") from exc


def load_expected(path, actual: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Recorded predictions under the names of the converted model's outputs (`actual`):
    label / probabilities for classifiers, value for regressors and transformers."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"expected file {path} does not exist")
    read = _read_expected_arrays(path)
    classifier = "label" in actual
    out: dict[str, np.ndarray] = {}
    if isinstance(read, dict):  # named CSV columns
        if "target" in read:
            out["label" if classifier else "value"] = read["target"]
        if "probabilities" in read and classifier:
            out["probabilities"] = read["probabilities"]
        return out
    # Positional arrays: [labels, probabilities] or [values]; one 2-D array of as many
    # columns as the model has classes is probabilities.
    for i, arr in enumerate(read):
        arr = np.asarray(arr)
        width = np.asarray(actual.get("probabilities", np.empty((0, 0)))).shape[-1] if classifier else None
        if classifier and arr.ndim == 2 and arr.shape[1] > 1 and arr.shape[1] == width:
            out["probabilities"] = arr
        elif classifier and i == 0:
            out["label"] = arr.reshape(-1) if arr.ndim == 2 and arr.shape[1] == 1 else arr
        elif not classifier and i == 0:
            out["value"] = arr.reshape(len(arr)) if arr.ndim == 2 and arr.shape[1] == 1 else arr
    return out


def _same_label_type(recorded: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Recorded labels as the converted model types them (1.0 in a CSV is the class 1)."""
    if recorded.dtype.kind in "fiu" and np.asarray(actual).dtype.kind in "iu" and \
            np.all(np.mod(recorded, 1) == 0):
        return recorded.astype(np.int64)
    return recorded


def check_expected(result: Verification, path) -> Verification:
    """Decide `result` by the converted model's outputs against predictions recorded where
    the model was made (the file at `path`), keeping the live comparison with the source
    as loaded here in the report. Needs the inputs the predictions were recorded for."""
    if result.evidence is None:
        raise UsageError("--expected needs the converted model to run on the recorded inputs",
                         hint="pass --sample FILE with the rows the expected predictions were made for")
    X, actual = result.evidence
    recorded = load_expected(path, actual)
    if "label" in recorded and "label" in actual:
        recorded["label"] = _same_label_type(np.asarray(recorded["label"]), actual["label"])
    rows = len(next(iter(X.values()))) if isinstance(X, dict) else len(X)
    for name, arr in recorded.items():
        if len(arr) != rows:
            raise UsageError(f"{Path(path).name} records {len(arr)} predictions for {rows} input rows",
                             hint="the expected file and --sample must hold the same rows, in the same order")
    checks = compare(recorded, actual, result.atol, result.rtol)
    if not checks:
        raise UsageError(f"nothing in {Path(path).name} matches the converted model's outputs ({', '.join(actual)})")
    live = {"status": result.status, "reason": result.reason, "outputs": [c.to_dict() for c in result.outputs]}
    result.expected = {"file": str(path), "outputs": [c.to_dict() for c in checks], "live": live}
    result.inputs += f"; against recorded predictions {Path(path).name}"
    if all(c.ok for c in checks):
        if result.status != "verified":
            result.notes.append(f"the source as loaded here ({result.status}: {result.reason or 'no comparison'}) "
                                f"disagrees with its recorded predictions; the conversion matches the recorded ones")
        result.status, result.reason = "verified", ""
        result.reference = f"recorded predictions ({Path(path).name})" + (
            " and the source model" if live["status"] == "verified" else "")
    else:
        bad = ", ".join(c.name for c in checks if not c.ok)
        result.status, result.reason = "mismatch", f"outputs differ from the recorded predictions: {bad}"
        result.reference = f"recorded predictions ({Path(path).name})"
    result.outputs = checks  # the source's live figures stay in result.expected["live"]
    return result


def check_recorded(result: Verification, target: Predictor, recorded) -> Verification:
    """Also run the converted model on the rows a model carries with the predictions made
    for them where it was made (sklearn2pmml's PMMLPipeline.verify()); they must agree."""
    if recorded is None:
        return result
    X, outputs = recorded
    actual = _predict(target, X, "converted")
    if "label" in outputs and "label" in actual:
        outputs["label"] = _same_label_type(np.asarray(outputs["label"]), actual["label"])
    checks = compare(outputs, actual, result.atol, result.rtol)
    if not checks:
        return result
    rows = len(next(iter(X.values()))) if isinstance(X, dict) else len(X)
    result.expected = {"file": "recorded in the model", "rows": rows, "outputs": [c.to_dict() for c in checks]}
    result.reference = f"source model, and the predictions recorded in it ({rows} rows)"
    if not all(c.ok for c in checks):
        bad = ", ".join(c.name for c in checks if not c.ok)
        result.status, result.reason = "mismatch", f"outputs differ from the predictions recorded in the model: {bad}"
    return result
