"""One error hierarchy. Library code raises these; only the CLI prints and exits.

Each class carries a stable exit code and the one wording of what that code means
(`label`); EXIT_CODES, the table in `mlconvert --help` and README, is built from them.
An instance carries a hint that says what to do next.
"""
from __future__ import annotations


class MlconvertError(Exception):
    """Base class. `exit_code` is what the CLI exits with; `hint` is the next step."""

    exit_code = 1
    label = "internal error (a bug: please report)"

    def __init__(self, message: str, hint: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or {}

    def to_dict(self) -> dict:
        return {
            "error": type(self).__name__,
            "exit_code": self.exit_code,
            "message": self.message,
            "hint": self.hint,
            **({"details": self.details} if self.details else {}),
        }


class InternalError(MlconvertError):
    exit_code = 1
    label = "internal error (a bug: please report)"


class UsageError(MlconvertError):
    exit_code = 2
    label = "usage error"


class InputError(MlconvertError):
    """Input not readable or not recognised: missing, corrupt, truncated, LFS pointer, HTML."""

    exit_code = 3
    label = "input not readable or not recognised (corrupt, truncated, LFS pointer, HTML...)"


class NoPathError(MlconvertError):
    """No chain of available, applicable edges leads to the target format."""

    exit_code = 4
    label = "no conversion path for this model here (each rejected edge and why)"


class ConversionError(MlconvertError):
    """A conversion step ran and failed."""

    exit_code = 5
    label = "a conversion step failed"


class Unsupported(ConversionError):
    """The model uses something a step cannot express faithfully (an op, a spec type, an
    objective). `elements` lists them all. A step raising it fails like any other, but
    when no other route works the conversion ends as "no path" (exit 4), naming them."""

    def __init__(self, elements: list[str] | str, where: str, hint: str | None = None):
        self.elements = [elements] if isinstance(elements, str) else sorted(set(elements))
        super().__init__(f"{where} cannot express: {', '.join(self.elements)}", hint=hint,
                         details={"unsupported": self.elements})


class VerificationError(MlconvertError):
    """Source and converted model disagree beyond tolerance."""

    exit_code = 6
    label = "verification failed: outputs differ beyond tolerance"


class UntrustedInputError(MlconvertError):
    """Loading the input would run code outside the allow-list."""

    exit_code = 7
    label = "refused: input would run untrusted code (--trust to override)"


class UnverifiedError(MlconvertError):
    """The result could not be verified and --strict was given."""

    exit_code = 8
    label = "unverified and --strict given"


class BatchError(MlconvertError):
    exit_code = 9
    label = "batch: one or more items failed"


SUCCESS = "converted (and verified, unless --no-verify)"
"""What exit 0 means."""

ERRORS: tuple[type[MlconvertError], ...] = (InternalError, UsageError, InputError, NoPathError, ConversionError,
                                           VerificationError, UntrustedInputError, UnverifiedError, BatchError)
"""Every exit code besides 0, one class each."""

EXIT_CODES: dict[int, str] = {0: SUCCESS, **{cls.exit_code: cls.label for cls in ERRORS}}
"""The one exit-code table: `mlconvert --help`, README and batch reports use it."""
