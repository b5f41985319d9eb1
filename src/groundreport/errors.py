"""Errors a user can cause. The CLI prints their message as one line, never a traceback."""


class UserError(Exception):
    """A mistake in the command line or its inputs: stop with this message."""


class BadInput(Exception):
    """One input item (an image, a caption row) is unusable: skip it with this reason."""
