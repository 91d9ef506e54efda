"""Server paths as the management API sees them.

The API imports files only from the allowed import folders (``$PLINTH_HOME/imports`` and
``PLINTH_IMPORT_DIRS``), and no answer names an absolute path of the server: the folders a
caller may use are named by their setting (``$PLINTH_HOME/imports``, ``PLINTH_IMPORT_DIRS[0]``),
and every error that leaves the API has the server's own folders replaced by those names
(:func:`hide_paths`, called by the error handlers), so ``/srv/models/x.gguf`` is answered as
``PLINTH_IMPORT_DIRS[0]/x.gguf`` and a blob as ``$PLINTH_HOME/artifacts/...``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from starlette.requests import Request

from plinth.errors import ErrorCode, PlinthError
from plinth.userfiles import check_path_text


class ServerPaths:
    """The allowed import folders and the replacement names of the server's folders."""

    def __init__(self, home: Path, import_dirs: list[Path]) -> None:
        home = Path(home)
        self.roots = [Path(os.path.realpath(d)) for d in import_dirs]
        named: dict[str, str] = {}
        for i, d in enumerate(import_dirs):
            name = "$PLINTH_HOME/imports" if Path(d) == home / "imports" else f"PLINTH_IMPORT_DIRS[{i}]"
            for form in {str(d), os.path.realpath(d)}:
                named.setdefault(form.rstrip("/") or "/", name)
        for form in {str(home), os.path.realpath(home)}:
            named.setdefault(form.rstrip("/") or "/", "$PLINTH_HOME")
        # Longest first, so an import folder inside the home is named as the import folder.
        self._names = sorted(((k, v) for k, v in named.items() if k != "/"), key=lambda kv: len(kv[0]), reverse=True)

    def resolve(self, raw: str, param: str = "path") -> Path:
        """The real path of ``raw`` if it lies inside an allowed import folder.

        A NUL byte is 400 naming ``param``; a path outside the folders is 403.
        """
        text = check_path_text(raw, param)
        path = Path(os.path.realpath(os.path.expanduser(text)))
        if not any(path == r or r in path.parents for r in self.roots):
            raise PlinthError(
                ErrorCode.PERMISSION_DENIED,
                f"path {self.hide(text)!r} is outside the allowed import directories "
                "($PLINTH_HOME/imports and the folders in PLINTH_IMPORT_DIRS); "
                "use `plinth models add` (or the matching command) on the server for other paths",
                param=param,
            )
        return path

    def shown(self, path: Path | str) -> str:
        """How an answer names a server path."""
        return self.hide(str(path))

    def hide(self, text: str) -> str:
        for prefix, name in self._names:
            if prefix in text:
                text = _replace_whole(text, prefix, name)
        return text

    def hide_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.hide(value)
        if isinstance(value, dict):
            return {k: self.hide_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.hide_value(v) for v in value]
        return value

    def hide_error(self, err: PlinthError) -> PlinthError:
        message = self.hide(err.message)
        details = self.hide_value(err.details)
        if message == err.message and details == err.details:
            return err
        return PlinthError(err.code, message, param=err.param, details=details, retry_after=err.retry_after)


def _replace_whole(text: str, prefix: str, name: str) -> str:
    """Replace ``prefix`` where it is a whole path (not followed by more name characters)."""
    out, start = [], 0
    while (i := text.find(prefix, start)) != -1:
        end = i + len(prefix)
        if end < len(text) and (text[end].isalnum() or text[end] in "._-"):
            out.append(text[start:end])
        else:
            out.append(text[start:i] + name)
        start = end
    out.append(text[start:])
    return "".join(out)


def server_paths(request: Request) -> ServerPaths:
    """The app's :class:`ServerPaths`, built once from its settings."""
    state = request.app.state
    found = getattr(state, "server_paths", None)
    if found is None:
        settings = state.services.settings
        found = state.server_paths = ServerPaths(settings.home, list(settings.import_dirs))
    return found


def import_path(request: Request, raw: str, param: str = "path") -> Path:
    """``raw`` resolved inside an allowed import folder (see :meth:`ServerPaths.resolve`)."""
    return server_paths(request).resolve(raw, param)


def hide_paths(request: Request, err: PlinthError) -> PlinthError:
    """``err`` with the server's folders named by their settings (a no-op without services)."""
    if getattr(request.app.state, "services", None) is None:
        return err
    return server_paths(request).hide_error(err)
