"""Errors for user mistakes: one line that names the file or value and the fix.

The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """Bad input from a user: a missing or corrupt file, a wrong size, a NaN value."""


class Preempted(Exception):
    """A job stopped on SIGTERM (a scheduler's preemption) after saving its state; rerunning
    the same command resumes it. The CLI prints the message and exits with status 143."""

    exit_status = 143
