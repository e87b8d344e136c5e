"""Errors for user mistakes: one line that names the file or value and the fix.

The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """Bad input from a user: a missing or corrupt file, a wrong size, a NaN value."""
