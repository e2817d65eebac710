"""XGBoost and LightGBM -> ONNX with onnxmltools."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlconvert.edges import Edge, Requirement, StepContext, Tolerance, n_features_of, register_edge
from mlconvert.errors import ConversionError, Unsupported

if TYPE_CHECKING:
    from mlconvert.formats import Source


def _convert(model, ctx: StepContext, library: str):
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [("input", FloatTensorType([None, n_features_of(model)]))]
    opset = ctx.options.get("opset")
    try:
        if library == "xgboost":
            return onnxmltools.convert_xgboost(model, initial_types=types, target_opset=opset)
        return onnxmltools.convert_lightgbm(model, initial_types=types, target_opset=opset, zipmap=False)
    except Exception as exc:  # onnxmltools raises assorted errors for unsupported models
        raise ConversionError(
            f"onnxmltools cannot convert this {library} model: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            hint="objectives other than regression, binary and multiclass, and categorical splits, are not supported",
        ) from exc


# What onnxmltools converts right, measured against XGBoost and LightGBM: anything else
# it refuses here (Unsupported), so the planner takes mlconvert's own tree writer
# (translate_trees) instead, and verification still checks whatever it does convert.
_XGBOOST_OBJECTIVES = {"reg:squarederror", "reg:linear", "reg:pseudohubererror", "reg:absoluteerror",
                       "binary:logistic", "multi:softprob", "multi:softmax",
                       "count:poisson", "reg:gamma", "reg:tweedie"}
_LIGHTGBM_OBJECTIVES = {"binary", "multiclass", "regression", "regression_l1", "huber", "fair", "quantile",
                        "mape", "poisson", "gamma", "tweedie", "lambdarank", "rank_xendcg", "custom"}
_OURS = "mlconvert's own tree writer converts it (edge trees-{})"


def xgboost_limits(doc: dict, double: bool = False) -> list[str]:
    """What in this XGBoost model onnxmltools gets wrong or cannot express."""
    learner = doc.get("learner", {})
    params = learner.get("learner_model_param", {})
    objective = learner.get("objective", {}).get("name", "")
    out = []
    if objective not in _XGBOOST_OBJECTIVES:
        out.append(f"objective {objective}")
    if objective.startswith("multi:") and int(float(params.get("num_class", 0) or 0)) <= 2:
        out.append(f"{objective} with two classes")
    if int(float(params.get("num_target", 1) or 1)) > 1:
        out.append("several targets")
    names = learner.get("feature_names") or []
    categorical = [n or f"f{i}" for i, (n, t) in
                   enumerate(zip(names or [None] * len(learner.get("feature_types") or []),
                                 learner.get("feature_types") or [])) if t == "c"]
    if categorical:
        out.append(f"categorical splits (features {', '.join(map(str, categorical))})")
    if "best_iteration" in (learner.get("attributes") or {}):
        out.append("early stopping (best_iteration)")
    if double:
        out.append("--double (float64)")
    return out


def lightgbm_limits(text: str, double: bool = False) -> list[str]:
    """What in this LightGBM model onnxmltools gets wrong or cannot express."""
    from mlconvert.formats.classic.lightgbm import parse

    header, trees, _ = parse(text)
    name, _, params = header.get("objective", "custom").partition(" ")
    out = []
    if name not in _LIGHTGBM_OBJECTIVES:
        out.append(f"objective {name}")
    if "sigmoid:" in params and "sigmoid:1 " not in params + " ":
        out.append(f"objective {header['objective']} (sigmoid scale)")
    if "sqrt" in params.split():
        out.append("regression with sqrt")
    if "average_output" in header:
        out.append("rf boosting (averaged trees)")
    if any(t.get("is_linear") == "1" for t in trees):
        out.append("linear trees (linear_tree)")
    if any((int(d) >> 2) & 3 == 1 for t in trees for d in t.get("decision_type", "").split()):
        out.append("zero-as-missing splits")
    if double:
        out.append("--double (float64)")
    return out


def _plain_booster(model, double: bool = False):
    """The model as onnxmltools can read it: a gbtree Booster with positional features."""
    import json

    import xgboost

    from mlconvert.formats.xgboost_model import dart_as_gbtree

    booster = model.get_booster() if hasattr(model, "get_booster") else model
    doc = json.loads(booster.save_raw(raw_format="json"))
    limits = xgboost_limits(doc, double)
    if limits:
        raise Unsupported(limits, where="onnxmltools' XGBoost converter", hint=_OURS.format("xgboost"))
    doc = dart_as_gbtree(doc)
    plain = xgboost.Booster()
    plain.load_model(bytearray(json.dumps(doc).encode()))
    # onnxmltools only understands the names f0, f1, ...; ONNX takes a matrix anyway.
    plain.feature_names, plain.feature_types = None, None
    return plain


def xgboost_to_onnx(source: Source, dst: Path, ctx: StepContext) -> None:
    model = _plain_booster(source.model, bool(ctx.options.get("double")))
    dst.write_bytes(_convert(model, ctx, "xgboost").SerializeToString())


def _convertible_lightgbm(model):
    """A custom objective (recorded as "custom", or not recorded at all) outputs the raw
    score, which is exactly what the 'regression' objective outputs."""
    booster = getattr(model, "booster_", model)
    text = booster.model_to_string()
    lines = text.splitlines()
    objective = next((line for line in lines if line.startswith("objective=")), None)
    if objective is not None and not objective.startswith("objective=custom"):
        return model
    if booster.num_model_per_iteration() > 1:
        raise ConversionError("a multiclass LightGBM model with a custom objective has no ONNX equivalent here",
                              hint="its raw scores depend on the custom transform, which is not in the file")
    if objective is None:
        lines.insert(lines.index("tree") + 1, "objective=regression")
    else:
        lines[lines.index(objective)] = "objective=regression"
    lines = [("[objective: regression]" if line == "[objective: custom]" else line) for line in lines]
    import lightgbm

    return lightgbm.Booster(model_str="\n".join(lines) + "\n")


def lightgbm_to_onnx(source: Source, dst: Path, ctx: StepContext) -> dict:
    booster = getattr(source.model, "booster_", source.model)
    limits = lightgbm_limits(booster.model_to_string(), bool(ctx.options.get("double")))
    if limits:
        raise Unsupported(limits, where="onnxmltools' LightGBM converter", hint=_OURS.format("lightgbm"))
    model = _convertible_lightgbm(source.model)
    onx = _convert(model, ctx, "lightgbm")
    # LightGBM compares float64 thresholds; onnxmltools rounds them to the nearest float32.
    from mlconvert.edges._thresholds import fix_float32_thresholds
    from mlconvert.formats.lightgbm_text import LightGBMPredictor

    changed = fix_float32_thresholds(onx, LightGBMPredictor(getattr(model, "booster_", model)).thresholds())
    dst.write_bytes(onx.SerializeToString())
    return {"thresholds_rounded": changed}


_REQUIRES = (Requirement("onnxmltools", "1.13"), Requirement("onnx"))
_FLOAT32_SUMS = Tolerance(1e-5, 1e-4, "tree sums accumulate in float32 in ONNX Runtime")

for source, lib, func in (
    ("pickle", "xgboost", xgboost_to_onnx),
    ("xgboost", "xgboost", xgboost_to_onnx),
    ("pickle", "lightgbm", lightgbm_to_onnx),
    ("lightgbm", "lightgbm", lightgbm_to_onnx),
):
    register_edge(
        Edge(
            name=f"onnxmltools-{lib}" + ("-pickle" if source == "pickle" else ""),
            source=source,
            target="onnx",
            flavors=frozenset({lib}),
            output_flavor="onnx-ml",
            run=func,
            library="onnxmltools",
            requires=_REQUIRES + (Requirement(lib),),
            fidelity="float32 inputs; thresholds rounded to decide exactly" if lib == "lightgbm"
            else "lossless (XGBoost computes in float32)",
            tolerance=_FLOAT32_SUMS,
            # --double is refused as a limit (above): the run re-plans to the tree writer, which keeps float64.
            options=("opset", "double"),
        )
    )
