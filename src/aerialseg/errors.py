"""The errors a user can cause, each with a message that names the key or the file.

They live in this small module so that every workflow step can catch them without importing
torch.
"""


class ConfigError(ValueError):
    """A configuration that the workflow cannot run; the message lists every problem."""


class InputError(ValueError):
    """An input file that the workflow cannot use; the message names the file."""


class WeightsError(RuntimeError):
    """ImageNet weights were asked for but cannot be found or do not match."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite or exploded loss; the message names the epoch and what to try."""


class WriteError(OSError):
    """An output could not be written (a full disk, a folder without write permission); the
    message names the file and what to do."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message, for one-line reports (a log line, a table cell)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else "(no message)"
