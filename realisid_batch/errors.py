"""Errors of the batch client, each worded with what to do about it."""


class BatchError(Exception):
    """A problem with the command's input (workflow, jobs file, options): nothing was queued."""


class JobError(ValueError):
    """One job cannot run as written (bad value, missing image, unknown title): that job fails, the rest go on."""
