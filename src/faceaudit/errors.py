"""Named errors. Every bad input ends in one of these, with a message a person can act on."""


class FaceAuditError(Exception):
    """Base class of every error faceaudit raises on purpose."""


class InputError(FaceAuditError, ValueError):
    """An input file or argument is malformed or inconsistent."""


class ScoreFileError(InputError):
    """A score file cannot be read as a score table (wrong columns, empty, unreadable)."""


class SampleTableError(InputError):
    """The sample table is malformed: missing columns, duplicate sample ids, a subject in two groups."""


class UnknownSampleError(InputError):
    """A score row names a sample id that the sample table does not have."""


class DuplicatePairError(InputError):
    """The same (probe, reference) comparison appears more than once."""


class MatedLabelError(InputError):
    """A score file's `mated` column disagrees with the subject ids of the sample table."""


class EmptyError(InputError):
    """A measure was asked of an empty set (no mated or no non-mated comparisons)."""


class IncompatibleError(FaceAuditError, ValueError):
    """Two ScoreDistributions cannot be merged (different bins, groups or settings)."""


class NotExactError(FaceAuditError):
    """The answer falls below the exact tail of the non-mated histogram.

    The histogram can locate the answer only to within one bin; faceaudit refuses to report a
    bin-resolved number as if it were exact. Rebuild the distributions with a lower tail cutoff.
    """


class HistogramMemoryError(InputError):
    """The histograms of a grouping would take more memory than the limit allows (refused before they are
    allocated; the message gives the figure and how to raise the limit)."""


class EncodingError(InputError):
    """A text file (CSV) cannot be decoded with the encoding it is read with.

    Text files are read as UTF-8, with or without a byte-order mark, unless another encoding is given
    (``encoding=`` on the readers, ``--encoding`` on the command line).
    """


class IdentifierTypeError(InputError):
    """Identifiers of two files cannot be matched without guessing: integer-typed ids in one file
    against zero-padded or otherwise non-canonical decimal text ids (``"007"``) in the other."""


class OptionError(InputError):
    """A command-line option (or the matching keyword argument) is outside its domain."""

    def __init__(self, option: str, value: object, rule: str) -> None:
        self.option, self.value, self.rule = option, value, rule
        super().__init__(f"{option} {value!r}: {rule}")


class OutputError(FaceAuditError):
    """A result file could not be written (its folder is missing, read-only or full)."""
