"""The one exception type that means "the user asked for something we cannot do"."""


class UsageError(Exception):
    """Bad input: reported as one line on stderr with exit status 2, never as a traceback."""
