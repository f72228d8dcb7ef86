"""The one exception type users see: its message is printed as a single line."""


class SessrecError(Exception):
    """A problem with the user's input or environment, reported without a traceback."""


class StorageError(SessrecError):
    """Object storage or the local file system refused or failed a request."""


class NotFoundError(StorageError):
    """A path or object that was asked for does not exist."""
