"""The exceptions rcforge raises on purpose.

- `BadRecord`: one record (an image, an object, a question) cannot be used. Readers catch it, send the record to
  the errors output with its reason, and go on; it carries a short machine-readable ``reason``.
- `InputError`: a whole input cannot be read (missing file, malformed or truncated JSON, a pickle that tries to
  run code). Fatal; the message names the file and where it broke.
- `RecipeError`: the recipe is wrong (unknown key, bad value); the message names the key and the allowed values.
- `TooManyBadRecords`: the share of bad records passed the recipe's threshold, or ``on_bad_records: error``.

The CLI prints these as one clear line instead of a traceback.
"""

from __future__ import annotations


class RcforgeError(Exception):
    """Base of the errors the CLI reports without a traceback."""


class BadRecord(RcforgeError):
    def __init__(self, reason: str, message: str, *, field: str = "", record: str = ""):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.field = field
        self.record = record


class InputError(RcforgeError):
    pass


class RecipeError(RcforgeError):
    pass


class TooManyBadRecords(RcforgeError):
    pass


class LedgerError(RcforgeError):
    """A ledger does not balance: some input record is neither written, filtered, excluded nor rejected."""
