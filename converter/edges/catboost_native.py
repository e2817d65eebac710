"""CatBoost's own save and load, and its ONNX export."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlconvert.edges import Edge, Requirement, StepContext, register_edge, resave
from mlconvert.errors import ConversionError

if TYPE_CHECKING:
    from mlconvert.formats import Source


def to_onnx(source: Source, dst: Path, ctx: StepContext) -> None:
    model = source.model
    import catboost

    if model.get_cat_feature_indices():
        names = [repr(model.feature_names_[i]) for i in model.get_cat_feature_indices()]
        raise ConversionError(
            f"CatBoost's ONNX export does not support categorical features (this model has {len(names)}: "
            f"{', '.join(names)})",
            hint="retrain with the categorical features one-hot encoded, or keep the .cbm",
        )
    try:
        model.save_model(str(dst), format="onnx", export_parameters={"onnx_domain": "ai.catboost",
                                                                        "onnx_graph_name": "CatBoostModel"})
    except catboost.CatBoostError as exc:
        raise ConversionError(f"CatBoost's ONNX export failed: {exc}") from exc
    _drop_zipmap(dst)


def _drop_zipmap(path: Path) -> None:
    """Probabilities as a plain [N, classes] tensor, like every other ONNX edge (no ZipMap)."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    zipmaps = [n for n in graph.node if n.op_type == "ZipMap"]
    if not zipmaps:
        return
    for zipmap in zipmaps:
        tensor, output = zipmap.input[0], zipmap.output[0]
        for node in graph.node:  # the producer of the tensor now writes the graph output directly
            node.output[:] = [output if o == tensor else o for o in node.output]
            node.input[:] = [output if i == tensor else i for i in node.input]
        graph.node.remove(zipmap)
        for out in graph.output:
            if out.name == output:
                out.CopyFrom(onnx.helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, [None, None]))
    onnx.save(model, str(path))


_REQUIRES = (Requirement("catboost", "1.0"),)

register_edge(Edge(
    name="catboost-save", source="pickle", target="catboost", flavors=frozenset({"catboost"}),
    output_flavor="catboost", run=resave, library="catboost",
    requires=_REQUIRES,
))
register_edge(Edge(
    name="catboost-load", source="catboost", target="pickle", flavors=frozenset({"catboost"}),
    output_flavor="catboost", run=resave, library="catboost",
    requires=_REQUIRES, notes="CatBoostClassifier / CatBoostRegressor by the recorded loss",
))
register_edge(Edge(
    name="catboost-onnx", source="catboost", target="onnx", flavors=frozenset({"catboost"}),
    output_flavor="onnx-ml", run=to_onnx, library="catboost",
    requires=_REQUIRES + (Requirement("onnx"),), fidelity="float64 -> float32",
    notes="CatBoost's own exporter; numeric features only",
))
