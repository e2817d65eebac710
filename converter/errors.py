"""One error hierarchy. Library code raises these; only the CLI prints and exits.

Each class carries a stable exit code (README, `mlconvert --help`) and a hint that
says what to do next.
"""
from __future__ import annotations


class MlconvertError(Exception):
    """Base class. `exit_code` is what the CLI exits with; `hint` is the next step."""

    exit_code = 1
    label = "internal error"

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
    label = "internal error (a bug: please report it)"


class UsageError(MlconvertError):
    exit_code = 2
    label = "usage error"


class InputError(MlconvertError):
    """Input not readable or not recognised: missing, corrupt, truncated, LFS pointer, HTML."""

    exit_code = 3
    label = "input not readable"


class NoPathError(MlconvertError):
    """No chain of available, applicable edges leads to the target format."""

    exit_code = 4
    label = "no conversion path"


class ConversionError(MlconvertError):
    """A conversion step ran and failed."""

    exit_code = 5
    label = "conversion step failed"


class VerificationError(MlconvertError):
    """Source and converted model disagree beyond tolerance."""

    exit_code = 6
    label = "verification failed"


class UntrustedInputError(MlconvertError):
    """Loading the input would run code outside the allow-list."""

    exit_code = 7
    label = "refused: untrusted code"


class UnverifiedError(MlconvertError):
    """The result could not be verified and --strict was given."""

    exit_code = 8
    label = "unverified (--strict)"


class BatchError(MlconvertError):
    exit_code = 9
    label = "batch: items failed"


EXIT_CODES = {
    0: "converted (and verified, unless --no-verify)",
    1: "internal error (a bug: please report)",
    2: "usage error",
    3: "input not readable or not recognised (corrupt, truncated, LFS pointer, HTML...)",
    4: "no conversion path for this model here (each rejected edge and why)",
    5: "a conversion step failed",
    6: "verification failed: outputs differ beyond tolerance",
    7: "refused: input would run untrusted code (--trust to override)",
    8: "unverified and --strict given",
    9: "batch: one or more items failed",
}
