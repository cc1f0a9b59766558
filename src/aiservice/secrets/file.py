"""``secret://file/PATH``: a mounted file (Kubernetes Secret volume, Cloud Run secret volume).

Mounted secrets live at absolute paths, so ``secret://file/var/secrets/key`` reads
``/var/secrets/key`` (``secret://file//var/secrets/key`` means the same). A path starting
with ``./`` or ``../`` is relative to the working directory, for local development. One
trailing newline is stripped: ``echo value > file`` and most editors add one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import SecretError

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["FileSource", "resolve_path"]


def resolve_path(name: str) -> Path:
    """The file a ``secret://file/`` name points at."""
    if name.startswith(("./", "../")):
        return Path(name)
    return Path("/" + name.lstrip("/"))


def _strip_one_newline(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


class FileSource:
    def __init__(self, settings: Settings | None = None) -> None:
        # Nothing to configure: the file system is the whole backend.
        del settings

    def fetch(self, name: str) -> str:
        path = resolve_path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SecretError(f"file {path} does not exist") from None
        except IsADirectoryError:
            raise SecretError(f"{path} is a directory, not a file") from None
        except OSError as exc:
            raise SecretError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError(f"file {path} is not UTF-8 text") from None
        return _strip_one_newline(text)
