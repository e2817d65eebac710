"""Every click option the commands share, each declared once.

-v, -q and --json do not reach the command functions: click hands them to the run's
`Session` (console.py) as it parses them, so the error handling in cli.main knows them
even when the command itself fails.
"""
from __future__ import annotations

from pathlib import Path

import click

from mlconvert.console import Session


def session_of(ctx: click.Context) -> Session:
    return ctx.ensure_object(Session)


pass_session = click.make_pass_decorator(Session, ensure=True)


def _to_session(attribute: str):
    def store(ctx: click.Context, _param, value):
        if value:
            setattr(session_of(ctx), attribute, True)
        return value

    return store


def stack(*decorators):
    """Several option decorators as one."""

    def apply(func):
        for deco in reversed(decorators):
            func = deco(func)
        return func

    return apply


json_option = click.option("--json", is_flag=True, expose_value=False, callback=_to_session("json"),
                           help="Print one JSON document on stdout instead of the human output.")
quiet_option = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_to_session("quiet"),
                            help="No progress and no summary; errors are still shown (stderr).")
verbose_option = click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_to_session("verbose"),
                              help="Show tracebacks, and what converter libraries print and warn.")
output_options = stack(json_option, quiet_option, verbose_option)

class FormatChoice(click.Choice):
    """A format id, from the registry. The registry is read when the choices are first
    needed (help, completion, checking a value), so importing the CLI stays cheap."""

    def __init__(self):
        super().__init__([], case_sensitive=False)

    @property
    def choices(self):
        from mlconvert import formats

        return tuple(sorted(f.id for f in formats.all_formats()))

    @choices.setter
    def choices(self, _value):
        pass  # click.Choice sets it in __init__; the registry is the one list

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            from mlconvert import formats

            close = formats.did_you_mean(str(value), self.choices)
            self.fail(f"{value!r} is not a format mlconvert knows"
                      + (f"; did you mean {close!r}?" if close else f" (formats: {', '.join(self.choices)})"),
                      param, ctx)


from_option = click.option("--from", "from_format", type=FormatChoice(),
                           help="Input format (default: detected from content).")
to_option = click.option("--to", "to_format", type=FormatChoice(), help="Output format (default: from the extension).")
via_option = click.option("--via", type=FormatChoice(), help="Force an intermediate format.")
trust_option = click.option("--trust", is_flag=True,
                            help="Load models that run code from the file: pickles importing outside the allow-list, "
                                 "Keras Lambda layers.")
SAMPLE_SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".txt", ".pb")


def _check_sample(ctx, param, value):
    """The sample is read now, before any model is loaded: a missing or unreadable one
    is a usage error in a second, not after the conversion has run."""
    if value is None or ctx.resilient_parsing:
        return value
    path = Path(value)
    if not path.is_file():
        raise click.BadParameter(f"{path} does not exist", ctx, param)
    if path.suffix.lower() not in SAMPLE_SUFFIXES:
        raise click.BadParameter(f"{path.name} must be .npy, .npz (named arrays), .csv, .tsv or an ONNX TensorProto "
                                 ".pb", ctx, param)
    try:
        if path.suffix.lower() in (".npy", ".npz"):
            import numpy as np

            loaded = np.load(path, allow_pickle=False)
            if hasattr(loaded, "close"):
                loaded.close()
        elif path.suffix.lower() == ".pb":  # binary TensorProto: parsed when the sample is read
            if path.stat().st_size == 0:
                raise click.BadParameter(f"{path.name} is empty", ctx, param)
        else:
            with open(path, encoding="utf-8") as fh:
                if not any(line.strip() for line in fh):
                    raise click.BadParameter(f"{path.name} is empty", ctx, param)
    except click.BadParameter:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path.name}: {exc}", ctx, param) from None
    return path


def _check_opset(ctx, param, value):
    """An opset the installed onnx does not know fails now, not after the conversion started."""
    if value is None or ctx.resilient_parsing:
        return value
    try:
        from onnx.defs import onnx_opset_version
    except ImportError:  # no ONNX here: no ONNX step will run, the plan says why
        return value
    newest = onnx_opset_version()
    if not 1 <= value <= newest:
        raise click.BadParameter(f"{value} is not an opset the installed onnx knows (1 to {newest})", ctx, param)
    return value


sample_option = click.option("--sample", type=click.Path(dir_okay=False, path_type=Path), callback=_check_sample,
                             help="Inputs for verification (.npy, .csv, .tsv, .npz of named arrays, or ONNX "
                                  "TensorProto input_0.pb).")
expected_option = click.option(
    "--expected", type=click.Path(exists=True, path_type=Path),
    help="Predictions recorded where the model was made, for the --sample rows (.csv with label / value / "
         "probability(<class>) columns, .npy, a pickle of arrays, or ONNX output_N.pb files): the converted "
         "model must match them.")
atol_option = click.option("--atol", type=click.FloatRange(min=0),
                           help="Absolute tolerance (default 1e-5, or what the edge declares).")
rtol_option = click.option("--rtol", type=click.FloatRange(min=0),
                           help="Relative tolerance (default 1e-5, or what the edge declares).")
tolerance_options = stack(atol_option, rtol_option)

no_verify_option = click.option("--no-verify", is_flag=True, help="Skip verification (the result is unverified).")
strict_option = click.option("--strict", is_flag=True, help="An unverified result fails with exit 8.")
double_option = click.option("--double", is_flag=True,
                             help="Keep float64 inputs and thresholds where the converter can (skl2onnx).")
opset_option = click.option("--opset", type=int, callback=_check_opset, help="Target ONNX opset.")


def refuse_conflicts(no_verify: bool, strict: bool) -> None:
    """--strict fails every unverified result; --no-verify makes the result unverified."""
    if no_verify and strict:
        raise click.UsageError("--no-verify and --strict conflict: --strict fails every unverified result, "
                               "and --no-verify leaves the result unverified")
conversion_options = stack(no_verify_option, strict_option, double_option, opset_option)
