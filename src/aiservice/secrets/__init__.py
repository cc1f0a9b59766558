"""Secret references resolved from the environment, files and cloud secret stores."""

from .base import SOURCES, SecretError, SecretRef, SecretResolver, SecretSource, find_references

__all__ = [
    "SOURCES",
    "SecretError",
    "SecretRef",
    "SecretResolver",
    "SecretSource",
    "find_references",
]
