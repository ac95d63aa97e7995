"""regplan: mirror container images between OCI registries with plan, review, apply."""

import sys
import types

__version__ = "0.1.0"


def _defer_httpx_cli() -> None:
    """httpx's package imports its own command-line client whenever click is installed (older typer
    releases require it): click, rich's console, progress and tables, and pygments' lexers —
    more start-up CPU than httpx itself, for a `main` regplan never calls. Its place is taken by
    a module whose `main` imports the real one when called."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    stand_in = types.ModuleType("httpx._main")

    def main(*args: object, **kwargs: object) -> object:
        del sys.modules["httpx._main"]
        from httpx._main import main as real

        return real(*args, **kwargs)

    stand_in.main = main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = stand_in


_defer_httpx_cli()
