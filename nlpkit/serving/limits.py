"""What one request to `nlpkit serve` may ask for.

Every limit is an option of `nlpkit serve`, and a request over one is refused
before it reaches a model, with a 4xx JSON error that names the limit:

    {"error": "text 3 has 12,000 characters; the limit is 10,000 (--max-chars)", "limit": "max_chars"}
"""

import dataclasses

from nlpkit.config import Options, check_range, option

# The predict options that set how much a model writes per text (`nlpkit.options`' names for lengths):
# chargen's characters, next-word's completed words, translate's output tokens.
OUTPUT_LENGTH_OPTIONS = ("length", "complete", "max_output_length")


class LimitError(Exception):
    """A request over one of the server's limits: `status` is the HTTP status, `limit` the limit's name."""

    def __init__(self, limit, message, status=422):
        super().__init__(message)
        self.limit = limit
        self.status = status

    def body(self):
        return {"error": str(self), "limit": self.limit}


@dataclasses.dataclass
class ServeLimits(Options):
    """The limits of `nlpkit serve` (each also a command-line option)."""

    max_body_bytes: int = option(1_000_000, "Largest request body, in bytes (larger: 413).")
    max_texts: int = option(64, "Most texts in one request.")
    max_chars: int = option(10_000, "Most characters in one text.")
    max_generated: int = option(2_000, "Most tokens (characters for chargen) a request may ask a model to write "
                                       "per text: its \"length\", \"complete\" or \"max_output_length\".")
    batch_texts: int = option(256, "Most texts the server merges into one model call.")
    batch_wait_ms: float = option(2.0, "How long the first request of a batch waits for others to join it, in "
                                       "milliseconds (0: only requests already waiting join).")

    def check(self):
        check_range("max_body_bytes", self.max_body_bytes, 1, 1_000_000_000, whole=True)
        check_range("max_texts", self.max_texts, 1, 1_000_000, whole=True)
        check_range("max_chars", self.max_chars, 1, 100_000_000, whole=True)
        check_range("max_generated", self.max_generated, 1, 100_000, whole=True)
        check_range("batch_texts", self.batch_texts, 1, 1_000_000, whole=True)
        check_range("batch_wait_ms", self.batch_wait_ms, 0.0, 10_000.0)

    def check_body_size(self, size):
        if size > self.max_body_bytes:
            raise LimitError("max_body_bytes", f"the request body is over {self.max_body_bytes:,} bytes "
                                               "(--max-body-bytes)", status=413)

    def check_texts(self, texts):
        """Refuses no texts, too many, and a text too long (LimitError naming the limit)."""
        if not texts:
            raise LimitError("max_texts", "no texts: give at least one in \"texts\"")
        if len(texts) > self.max_texts:
            raise LimitError("max_texts", f"{len(texts):,} texts; the limit is {self.max_texts:,} per request "
                                          "(--max-texts)", status=413)
        for position, text in enumerate(texts, start=1):
            if len(text) > self.max_chars:
                raise LimitError("max_chars", f"text {position} has {len(text):,} characters; the limit is "
                                              f"{self.max_chars:,} (--max-chars)", status=413)

    def check_output_length(self, values):
        """Refuses an output length (`OUTPUT_LENGTH_OPTIONS`) over --max-generated."""
        for name in OUTPUT_LENGTH_OPTIONS:
            value = values.get(name)
            if isinstance(value, (int, float)) and value > self.max_generated:
                raise LimitError("max_generated", f"\"{name}\" is {value:,}; the limit is {self.max_generated:,} "
                                                  "(--max-generated)")
