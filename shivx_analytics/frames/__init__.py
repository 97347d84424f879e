"""The loaders (moved to frames/loaders.py; split by concern in the next commit)."""

from .loaders import *  # noqa: F403
from .loaders import __all__  # noqa: F401
