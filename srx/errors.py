"""The one domain exception srx raises for anything a user can fix."""


class SrxError(Exception):
    """A problem with user input or the environment; the CLI prints it and exits 1."""
