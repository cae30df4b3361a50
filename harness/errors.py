"""Errors for bad user input; the CLI turns each into one message and exit code 2."""


class HarnessInputError(Exception):
    """Invalid user input: a spec, a name, a data folder or a results folder."""


class DataError(HarnessInputError):
    """Missing, corrupt or mismatched training data."""
