"""PMML: an XML document whose root element is <PMML> (any DMG namespace/version).

sniff scans the file head's prolog (bounded) for a <PMML> root; describe streams the
document with ElementTree.iterparse (so large forests are not held in memory) after
refusing DOCTYPE/ENTITY declarations.
"""
from __future__ import annotations

import codecs
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from mlconvert.errors import InputError
from mlconvert.formats import Format, register_format

_ROOT_NAME_RE = re.compile(r"<(?:[A-Za-z_][\w.-]{0,64}:)?PMML[\s/>]")

MODEL_ELEMENTS = frozenset(
    {
        "AnomalyDetectionModel", "AssociationModel", "BaselineModel", "BayesianNetworkModel",
        "ClusteringModel", "GaussianProcessModel", "GeneralRegressionModel", "MiningModel",
        "NaiveBayesModel", "NearestNeighborModel", "NeuralNetwork", "RegressionModel",
        "RuleSetModel", "Scorecard", "SequenceModel", "SupportVectorMachineModel",
        "TextModel", "TimeSeriesModel", "TreeModel",
    }
)
_KINDS = {"classification": "classifier", "regression": "regressor", "clustering": "clustering"}
_DTYPES = {"double": "float64", "float": "float32", "integer": "int64", "string": "string", "boolean": "bool"}
# Bulky repeated elements: cleared once seen, so memory stays flat on big forests.
_BULK = frozenset({"Node", "Segment", "Neuron", "VectorInstance", "RegressionTable", "Item", "Itemset", "AssociationRule"})
_HINT_CORRUPT = "the PMML document looks truncated or corrupt; export or download it again"


def _decode_head(head: bytes, limit: int | None = 4096) -> str:
    head = head[:limit] if limit else head
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", "ignore")
    if head.startswith(codecs.BOM_UTF8):
        head = head[3:]
    return head.decode("utf-8", "ignore")


def _skip_prolog(text: str, max_items: int = 64) -> tuple[int | None, bool]:
    """(index of the root element, whether a DOCTYPE was passed) after whitespace, the
    XML declaration, comments and processing instructions; index None if the text
    ends first. A plain scan, not one regex: nested repetition backtracks badly."""
    pos = 0
    doctype = False
    for _ in range(max_items):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if text.startswith("<?", pos):
            end = text.find("?>", pos)
            pos = end + 2
        elif text.startswith("<!--", pos):
            end = text.find("-->", pos)
            pos = end + 3
        elif text.startswith("<!", pos):  # DOCTYPE, possibly with an internal subset
            doctype = True
            bracket, close = text.find("[", pos), text.find(">", pos)
            if bracket != -1 and (close == -1 or bracket < close):
                end = text.find("]", bracket)
                end = text.find(">", end) if end != -1 else -1
            else:
                end = close
            pos = end + 1
        else:
            return pos, doctype
        if end == -1:
            return None, doctype
    return None, doctype


def sniff(head: bytes, path: Path) -> bool:
    if not head:
        return False
    text = _decode_head(head)
    start, _doctype = _skip_prolog(text)
    return start is not None and _ROOT_NAME_RE.match(text, start) is not None


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _check_prolog(path: Path) -> None:
    """Refuse a DOCTYPE (and with it any ENTITY): it can only come before the root."""
    with open(path, "rb") as fh:
        text = _decode_head(fh.read(1 << 20), limit=None)
    start, doctype = _skip_prolog(text, max_items=10_000)
    if doctype:
        raise InputError(
            f"{path} declares a DOCTYPE/ENTITY; PMML needs neither and mlconvert refuses them",
            hint="entity declarations can expand to huge documents or read local files; remove the DOCTYPE",
        )
    if start is None:
        raise InputError(
            f"{path}: no root element within the first MiB (an unterminated comment or declaration?)",
            hint=_HINT_CORRUPT,
        )


def _parse(path: Path) -> dict:
    state: dict = {
        "version": None, "header": {}, "fields": [], "model": None, "mining": [],
        "outputs": [], "segments": 0, "segment_models": {}, "models": [],
    }
    stack: list[str] = []
    model_depth = None  # depth of the first model element
    with open(path, "rb") as fh:
        for event, elem in ET.iterparse(fh, events=("start", "end")):
            name = _local(elem.tag)
            if event == "start":
                stack.append(name)
                depth = len(stack)
                if depth == 1:
                    if name != "PMML":
                        raise InputError(f"{path}: the root element is <{name}>, expected <PMML>", hint=_HINT_CORRUPT)
                    state["version"] = elem.get("version")
                elif depth == 2 and name in MODEL_ELEMENTS:
                    state["models"].append(name)
                    if model_depth is None:
                        model_depth = depth
                        state["model"] = {
                            "type": name,
                            "functionName": elem.get("functionName"),
                            "modelName": elem.get("modelName"),
                            "algorithmName": elem.get("algorithmName"),
                        }
                elif model_depth is not None and stack[1] == state["model"]["type"] and len(state["models"]) == 1:
                    # Inside the first model: count top-level segments and their models.
                    if depth == 3 and name == "Segmentation":
                        state["multiple_model_method"] = elem.get("multipleModelMethod")
                    elif depth == 4 and name == "Segment" and stack[2] == "Segmentation":
                        state["segments"] += 1
                    elif depth == 5 and name in MODEL_ELEMENTS and stack[3] == "Segment":
                        state["segment_models"][name] = state["segment_models"].get(name, 0) + 1
                continue

            depth = len(stack)
            stack.pop()
            if depth == 2 and name == "Header":
                header = {k: v for k, v in elem.attrib.items() if k in ("copyright", "description", "modelVersion")}
                for child in elem:
                    tag = _local(child.tag)
                    if tag == "Application":
                        header["application"] = child.get("name")
                        if child.get("version"):
                            header["application_version"] = child.get("version")
                    elif tag == "Timestamp":
                        text = "".join(child.itertext()).strip()
                        if text:
                            header["timestamp"] = text
                state["header"] = header
                elem.clear()
            elif depth == 2 and name == "DataDictionary":
                for child in elem:
                    if _local(child.tag) != "DataField":
                        continue
                    field = {"name": child.get("name"), "optype": child.get("optype"), "dataType": child.get("dataType")}
                    values = [v.get("value") for v in child if _local(v.tag) == "Value" and v.get("property", "valid") == "valid"]
                    if values:
                        field["values"] = values
                    state["fields"].append(field)
                elem.clear()
            elif depth == 3 and model_depth is not None and len(state["models"]) == 1 and stack[-1] == state["model"]["type"]:
                if name == "MiningSchema":
                    state["mining"] = [
                        {"name": f.get("name"), "usageType": f.get("usageType", "active")}
                        for f in elem
                        if _local(f.tag) == "MiningField"
                    ]
                elif name == "Output":
                    state["outputs"] = [
                        {"name": f.get("name"), "feature": f.get("feature", "predictedValue"), "dataType": f.get("dataType")}
                        for f in elem
                        if _local(f.tag) == "OutputField"
                    ]
                elem.clear()
            elif name in _BULK or depth == 2:
                elem.clear()
    return state


def describe(path: Path) -> dict:
    path = Path(path)
    try:
        _check_prolog(path)
        state = _parse(path)
    except InputError:
        raise
    except ET.ParseError as exc:
        raise InputError(f"{path} is not well-formed XML: {exc}", hint=_HINT_CORRUPT) from exc
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", hint="check the path and permissions") from exc
    except (ValueError, KeyError, IndexError, TypeError, RecursionError) as exc:
        raise InputError(f"{path} could not be read as PMML: {exc}", hint=_HINT_CORRUPT) from exc

    model = state["model"]
    if model is None:
        raise InputError(
            f"{path} is a PMML document without a model element",
            hint="expected one of " + ", ".join(sorted(MODEL_ELEMENTS)),
        )
    fields = {f["name"]: f for f in state["fields"]}
    active = [m["name"] for m in state["mining"] if m["usageType"] == "active"]
    targets = [m["name"] for m in state["mining"] if m["usageType"] in ("predicted", "target")]

    def field_entry(name: str) -> dict:
        field = fields.get(name, {})
        entry = {"name": name, "dtype": _DTYPES.get(field.get("dataType"), field.get("dataType") or "unknown"), "shape": None}
        if field.get("optype"):
            entry["optype"] = field["optype"]
        if field.get("values"):
            entry["values"] = field["values"]
        return entry

    result: dict = {"flavor": "pmml"}
    function = model["functionName"]
    if function:
        result["kind"] = _KINDS.get(function, function)
    header = state["header"]
    if header.get("application"):
        result["producer"] = header["application"]
        if header.get("application_version"):
            result["producer_version"] = header["application_version"]
    result["n_features"] = len(active)
    if function == "classification" and targets:
        values = fields.get(targets[0], {}).get("values")
        if values:
            result["n_classes"] = len(values)
    result["inputs"] = [field_entry(name) for name in active]
    result["outputs"] = [field_entry(name) for name in targets]
    details: dict = {
        "pmml_version": state["version"],
        "header": header,
        "model_type": model["type"],
        "function_name": function,
        "data_fields": state["fields"],
        "mining_schema": state["mining"],
    }
    for key in ("modelName", "algorithmName"):
        if model.get(key):
            details[key] = model[key]
    if state["outputs"]:
        details["output_fields"] = state["outputs"]
    if model["type"] == "MiningModel":
        details["segments"] = state["segments"]
        details["segment_models"] = state["segment_models"]
        if state.get("multiple_model_method"):
            details["multiple_model_method"] = state["multiple_model_method"]
    if len(state["models"]) > 1:
        details["models"] = state["models"]
    result["details"] = details
    warnings = []
    missing = [name for name in active + targets if name not in fields]
    if missing:
        warnings.append("mining fields not in the DataDictionary: " + ", ".join(missing))
    if not targets and function in ("classification", "regression"):
        warnings.append("the mining schema names no target field")
    if warnings:
        result["warnings"] = warnings
    return result


register_format(
    Format(
        id="pmml",
        title="PMML",
        extensions=(".pmml",),
        sniff=sniff,
        describe=describe,
        family="pmml",
        notes="XML with a <PMML> root; .xml files are recognised by content",
    )
)
