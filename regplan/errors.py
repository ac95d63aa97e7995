"""Typed errors. Each carries what a user needs to act; the CLI turns them into one line."""

from __future__ import annotations


class RegplanError(Exception):
    """Base of every error regplan expects and reports without a traceback."""

    exit_code = 1


class UsageError(RegplanError):
    """A command line that cannot work (bad option value, unwritable output path): exit 2."""

    exit_code = 2


class ConfigError(RegplanError):
    """A problem in the configuration file, located by file, line and column when known."""

    def __init__(self, message: str, *, file: str = "", line: int = 0, column: int = 0) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file
        if where and self.line:
            where += f":{self.line}"
            if self.column:
                where += f":{self.column}"
        return f"{where}: {self.message}" if where else self.message


class TemplateError(RegplanError):
    """A Go template that does not parse or fails to execute."""


class InvalidReferenceError(RegplanError):
    """An image reference that does not parse (regsync: `invalid reference`)."""


class FilterError(RegplanError):
    """A bad regex or semver range in tags/repos filters."""


class RegistryError(RegplanError):
    """A registry (HTTP or OCI Layout) failed or refused a request."""

    def __init__(self, message: str, *, ref: str = "", status: int = 0) -> None:
        self.message = message
        self.ref = ref
        self.status = status
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.message
        if self.status:
            text += f" [http {self.status}]"
        return f"{self.ref}: {text}" if self.ref else text


class NotFoundError(RegistryError):
    """The manifest, blob, tag or repository does not exist (regsync: `not found`)."""


class UnauthorizedError(RegistryError):
    """Credentials missing or refused (HTTP 401/403)."""


class RateLimitedError(RegistryError):
    """The registry kept answering 429 after bounded retries."""


class DigestMismatchError(RegistryError):
    """Content whose digest or size differs from what was asked for."""


class ManifestError(RegistryError):
    """A manifest that is not valid JSON, too large, of an unknown type, or cyclic."""


class PlanFileError(RegplanError):
    """A plan file that is unreadable, corrupt, tampered with, or of an unknown version."""


class StalePlanError(RegplanError):
    """The target moved since the plan was made; nothing was written."""

    def __init__(self, moved: list[str]) -> None:
        self.moved = moved
        shown = "; ".join(moved[:5])
        more = f" (and {len(moved) - 5} more)" if len(moved) > 5 else ""
        super().__init__(
            f"saved plan is stale: {len(moved)} target(s) changed since planning: {shown}{more}"
        )


class TagMovedError(RegplanError):
    """A tag moved between the plan and the moment its image was about to move it: another
    writer won, and its tag is left as it is."""


class PlanConflictError(RegplanError):
    """Two sync steps want the same target tag at different digests."""


class CancelledError(RegplanError):
    """The run was cancelled (regsync: `task was canceled`)."""
