"""The one exception type for bad user input; the CLI turns it into one line and exit status 2."""


class EslError(Exception):
    """A problem with the user's input (file, config, artifact, option), stated in one line."""
