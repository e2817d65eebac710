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
                              help="Show tracebacks and more detail.")
output_options = stack(json_option, quiet_option, verbose_option)

from_option = click.option("--from", "from_format", metavar="FORMAT",
                           help="Input format (default: detected from content).")
to_option = click.option("--to", "to_format", metavar="FORMAT", help="Output format (default: from the extension).")
via_option = click.option("--via", metavar="FORMAT", help="Force an intermediate format.")
trust_option = click.option("--trust", is_flag=True,
                            help="Load models that run code from the file: pickles importing outside the allow-list, "
                                 "Keras Lambda layers.")
sample_option = click.option("--sample", type=click.Path(dir_okay=False, path_type=Path),
                             help="Inputs for verification (.npy, .csv, .npz of named arrays, or ONNX TensorProto input_0.pb).")
atol_option = click.option("--atol", type=float, help="Absolute tolerance (default 1e-5, or what the edge declares).")
rtol_option = click.option("--rtol", type=float, help="Relative tolerance (default 1e-5, or what the edge declares).")
tolerance_options = stack(atol_option, rtol_option)

no_verify_option = click.option("--no-verify", is_flag=True, help="Skip verification (the result is unverified).")
strict_option = click.option("--strict", is_flag=True, help="An unverified result fails with exit 8.")
double_option = click.option("--double", is_flag=True,
                             help="Keep float64 inputs and thresholds where the converter can (skl2onnx).")
opset_option = click.option("--opset", type=int, help="Target ONNX opset.")
conversion_options = stack(no_verify_option, strict_option, double_option, opset_option)
