"""Every error the firmware reports, each with the process exit code the CLI returns for it.

The exit codes are part of the CLI's contract (scripts rely on them):

=====  =====================================================================================
code   meaning
=====  =====================================================================================
0      success
1      an unexpected internal error (a bug: the traceback is printed)
2      usage or bad input: unknown option or task, missing or unreadable input file, input of
       the wrong shape, nothing loaded
3      bad model image: corrupt, truncated, unsupported version, or built for another
       accelerator configuration
4      accelerator error: the accelerator reported an error status, does not identify itself
       correctly, or cannot be reached
5      timeout: the accelerator did not finish within the allowed time
=====  =====================================================================================
"""

from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_INTERNAL", "EXIT_USAGE", "EXIT_IMAGE", "EXIT_ACCELERATOR",
           "EXIT_TIMEOUT", "EXIT_CODES", "FirmwareError", "UsageError", "ImageError",
           "IncompatibleImageError", "AcceleratorError", "AcceleratorTimeout"]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_IMAGE = 3
EXIT_ACCELERATOR = 4
EXIT_TIMEOUT = 5

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "internal error (a bug; traceback printed)",
    EXIT_USAGE: "usage or bad input (unknown option/task, missing or malformed input file, "
                "nothing loaded)",
    EXIT_IMAGE: "bad model image (corrupt, truncated, unsupported version, other accelerator "
                "config)",
    EXIT_ACCELERATOR: "accelerator error (error status, wrong ID/version, not reachable)",
    EXIT_TIMEOUT: "timeout (the accelerator did not finish in time)",
}


class FirmwareError(Exception):
    """Base class of every error the firmware reports; ``exit_code`` is the CLI's exit code."""

    exit_code = EXIT_INTERNAL


class UsageError(FirmwareError, ValueError):
    """Bad request or input: unknown task, missing file, wrong input shape, nothing loaded."""

    exit_code = EXIT_USAGE


class ImageError(FirmwareError, ValueError):
    """A model image is refused; the message says exactly what is wrong."""

    exit_code = EXIT_IMAGE


class IncompatibleImageError(ImageError):
    """A well-formed model image built for another accelerator (fingerprint or version)."""


class AcceleratorError(FirmwareError, RuntimeError):
    """The accelerator reported an error status or does not behave as its register map says.

    Attributes
    ----------
    error_code : int or None
        The STATUS.error_code field, when the error came from the status register.
    """

    exit_code = EXIT_ACCELERATOR

    def __init__(self, message: str, error_code: int | None = None):
        super().__init__(message)
        self.error_code = error_code


class AcceleratorTimeout(AcceleratorError):
    """The accelerator did not signal done or error within the timeout."""

    exit_code = EXIT_TIMEOUT
