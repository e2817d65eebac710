"""pickle / joblib: scikit-learn (and xgboost / lightgbm / catboost wrapper) models.

Sniffing and describing never unpickle: `describe` reports what the static scan
(_pickle_scan) found. `load` goes through _pickle_load.load_pickle, which refuses files
that name globals outside the allow-list (mlconvert.safety) unless trust=True.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from mlconvert import probe
from mlconvert.formats import Format, Loaded, register_format
from mlconvert.formats._pickle_load import load_pickle
from mlconvert.formats._pickle_scan import probe_pickle_head, scan_pickle
from mlconvert.formats._pickle_stream import container_of_head

_COMPRESSED_SUFFIXES = (".z", ".gz", ".bz2", ".xz", ".lzma", ".lz4")
EXTENSIONS = (
    ".pkl", ".pickle", ".joblib", ".sav", ".pkl.z", ".pkl.gz", ".pkl.bz2", ".pkl.xz", ".pkl.lzma",
    ".pkl.lz4", ".joblib.z", ".joblib.gz", ".joblib.bz2", ".joblib.xz", ".joblib.lzma", ".joblib.lz4",
)


def _has_extension(path: Path, extensions=EXTENSIONS) -> bool:
    return path.name.lower().endswith(extensions)


def sniff(head: bytes, path: Path) -> bool:
    """Pure and cheap: magic bytes, and the extension where bytes alone are too weak."""
    path = Path(path)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True  # PROTO opcode: pickle protocol 2..5
    if container_of_head(head) is not None:
        # zlib/gzip/bz2/xz/... is any compressed file; only a joblib-ish name makes it ours
        return _has_extension(path)
    if head and _has_extension(path):
        # protocol 0/1 pickles have no magic: accept them if the bytes parse as opcodes
        return probe_pickle_head(head)
    return False


_CLASSIFIERS = {
    "LogisticRegression", "LogisticRegressionCV", "SVC", "NuSVC", "LinearSVC", "GaussianNB",
    "MultinomialNB", "BernoulliNB", "ComplementNB", "CategoricalNB", "LinearDiscriminantAnalysis",
    "QuadraticDiscriminantAnalysis", "Perceptron", "CalibratedClassifierCV", "RidgeClassifierCV",
}
_REGRESSORS = {
    "LinearRegression", "Ridge", "RidgeCV", "Lasso", "LassoCV", "ElasticNet", "ElasticNetCV", "SVR",
    "NuSVR", "LinearSVR", "BayesianRidge", "Lars", "LarsCV", "LassoLars", "LassoLarsCV", "LassoLarsIC",
    "OrthogonalMatchingPursuit", "KernelRidge", "PLSRegression", "TransformedTargetRegressor",
}
_TRANSFORMERS = {
    "PCA", "TruncatedSVD", "Normalizer", "Binarizer", "PolynomialFeatures", "SplineTransformer",
    "FeatureUnion", "NMF", "FastICA", "KernelPCA", "VarianceThreshold", "SelectKBest",
    "SelectPercentile", "SelectFromModel", "RFE", "Nystroem", "RBFSampler",
}
_CLUSTERERS = {"KMeans", "MiniBatchKMeans", "DBSCAN", "AgglomerativeClustering", "Birch", "MeanShift"}


def _kind_of(name: str | None) -> str | None:
    if not name:
        return None
    if name in _CLASSIFIERS or name.endswith("Classifier"):
        return "classifier"
    if name in _REGRESSORS or name.endswith(("Regressor", "Regression")):
        return "regressor"
    if name.endswith("Ranker"):
        return "ranker"
    if name in _CLUSTERERS:
        return "clusterer"
    if name in _TRANSFORMERS or name.endswith(
        ("Scaler", "Encoder", "Transformer", "Imputer", "Vectorizer", "Selector", "Discretizer")
    ):
        return "transformer"
    return None


# Packages of scikit-learn-API wrappers (sklearn2pmml's PMMLPipeline and decorators,
# sklearn-pandas' DataFrameMapper).
_SKLEARN_API_WRAPPERS = ("sklearn2pmml", "sklearn_pandas")
_PRODUCERS = {"sklearn": "scikit-learn", "xgboost": "xgboost", "lightgbm": "lightgbm", "catboost": "catboost"}


def describe(path: Path) -> dict:
    """What the file holds, from a static scan: nothing in it is run."""
    scan = scan_pickle(path)
    top = scan.top_class.rsplit(".", 1)[-1] if scan.top_class else None
    if top in ("Pipeline", "PMMLPipeline"):
        kind = _kind_of(scan.steps[-1]) if scan.steps else None
        kind = kind or "pipeline"
    else:
        kind = _kind_of(top)
    flavor = scan.flavor
    if scan.top_class and scan.top_class.split(".")[0] in _SKLEARN_API_WRAPPERS:
        # A PMMLPipeline or DataFrameMapper is a scikit-learn model whatever its last step
        # (an XGBoost or LightGBM estimator converts inside it, through skl2onnx).
        flavor = "sklearn"
    producer = _PRODUCERS.get(flavor)
    producer_version = scan.versions.get(producer) if producer else None

    warnings: list[str] = []
    if scan.untrusted:
        warnings.append(
            "names globals outside the allow-list (" + ", ".join(scan.untrusted) + "); "
            "it will not be loaded without --trust"
        )
    if scan.sklearn_version:
        installed = probe.dist_version("scikit-learn")
        if installed and installed != scan.sklearn_version:
            warnings.append(
                f"pickled by scikit-learn {scan.sklearn_version}, installed {installed}: "
                "loading may warn or fail, and results may differ"
            )
    if scan.python2:
        warnings.append("written by Python 2")
    warnings.extend(scan.notes)
    flavor_reason = _unknown_flavor_reason(scan) if flavor == "unknown" else None
    if flavor_reason:
        warnings.append(flavor_reason)

    return {
        "flavor": flavor,
        "kind": kind,
        "producer": producer,
        "producer_version": producer_version,
        "n_features": scan.n_features,
        **({"feature_names": list(scan.feature_names)} if scan.feature_names else {}),
        "details": {
            "container": scan.container,
            "protocol": scan.protocol,
            "top_class": scan.top_class,
            "estimators": list(scan.estimators),
            "steps": list(scan.steps),
            "versions": dict(scan.versions),
            "globals": list(scan.globals),
            "untrusted": list(scan.untrusted),
            "python2": scan.python2,
        },
        "warnings": warnings,
        **({"flavor_reason": flavor_reason} if flavor_reason else {}),
    }


_NATIVE = {"xgboost": "XGBoost", "lightgbm": "LightGBM", "catboost": "CatBoost"}


def native_library(description: dict) -> str | None:
    """The native library loading this pickle reaches (an XGBoost, LightGBM or CatBoost
    model inside rebuilds its booster from raw bytes), if it is loaded without --trust."""
    details = description.get("details") or {}
    if details.get("untrusted"):
        return None  # not loaded without --trust; with it, its code is not run twice
    for name in details.get("globals") or []:
        library = _NATIVE.get(str(name).split(".", 1)[0])
        if library:
            return library
    return None


def probe_load(path: Path) -> None:
    """Unpickling (allow-listed globals only), which hands the booster bytes to the library."""
    load(path, trust=False)
# Modules whose globals build plain values; they say nothing about what model is inside.
_PLAIN = ("builtins", "__builtin__", "copyreg", "copy_reg", "_codecs", "collections", "numpy", "joblib", "pandas")


def _unknown_flavor_reason(scan) -> str:
    """Which classes made the flavor unknown: what the file holds instead of a model."""
    from mlconvert.formats._pickle_load import _missing_module_hint, installed

    classes = [g for g in scan.globals if g.split(".")[0] not in _PLAIN + tuple(_PRODUCERS) and g != scan.top_class]
    held = f"the file holds {scan.top_class}" if scan.top_class else "the file holds no object mlconvert recognises"
    made = f", built from {', '.join(classes[:8])}" + (f" and {len(classes) - 8} more" if len(classes) > 8 else "") \
        if classes else ""
    reason = (f"{held}{made}: no scikit-learn, XGBoost, LightGBM or CatBoost model, so its flavor is unknown "
              "(a model wrapped in another library's object converts once saved on its own)")
    tops = {g.split(".")[0] for g in [scan.top_class or "", *classes] if g}
    missing = sorted(t for t in tops if not installed(t))
    if missing:
        reason += "; " + "; ".join(_missing_module_hint(m) for m in missing)
    return reason


def predictor(source, options: dict):
    """A runnable view for verification; keeps what the loader noticed (old versions...)."""
    from mlconvert.formats._sklearn_api import predictor_for

    model = predictor_for(source.model)
    model.notes = tuple(source.notes)
    return model


def load(path: Path, *, trust: bool = False, **options) -> Loaded:
    """The unpickled object, after the static scan; refuses untrusted files unless trust=True."""
    loaded = load_pickle(path, trust=trust)
    # scikit-learn's own version warning is long; the pickle's description says it shorter.
    return Loaded(loaded.obj, tuple(w for w in loaded.warnings if "Trying to unpickle" not in w))


_JOBLIB_COMPRESSION = {".z": "zlib", ".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".lzma": "lzma", ".lz4": "lz4"}


def save(obj: Any, path: Path) -> None:
    """pickle protocol 5; joblib.dump for .joblib and compressed targets (steps write into
    a scratch folder, so nothing half-written ever sits at the user's path)."""
    path = Path(path)
    name = path.name.lower()
    suffix = next((s for s in _COMPRESSED_SUFFIXES if name.endswith(s)), None)
    if name.endswith(".joblib") or suffix:
        import joblib

        compress = (_JOBLIB_COMPRESSION[suffix], 3) if suffix else 0
        joblib.dump(obj, str(path), compress=compress)
    else:
        with open(path, "wb") as fh:
            pickle.dump(obj, fh, protocol=5)


register_format(
    Format(
        id="pickle",
        title="pickle / joblib",
        extensions=EXTENSIONS,
        sniff=sniff,
        describe=describe,
        load=load,
        save=save,
        predictor=predictor,
        family="classic",
        probe=probe_load,
        native=native_library,
        notes="scanned statically before loading; globals outside the allow-list need --trust",
    )
)
