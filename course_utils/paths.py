"""The project's folders: the checkout's root, the course's data and what is built under the root.

The data (``mnist/`` and ``checkpoints/``) is found through ``$COURSE_DATA_DIR`` when it is set, so
an installed package can use a copy of the repository's ``data/`` folder anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "COURSE_DATA_DIR"
DEPLOY_DIR = PROJECT_ROOT / "deploy"  # the C program's sources
SOURCE_DIR = PROJECT_ROOT / "source"  # the instructor notebooks
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"  # the student notebooks
BUILD_DIR = PROJECT_ROOT / "build"  # everything generated


def data_dir() -> Path:
    """The folder holding ``mnist/`` and ``checkpoints/``: ``$COURSE_DATA_DIR``, else the checkout's
    ``data/``. Raises FileNotFoundError, saying what to set, when that folder does not exist."""
    folder = Path(os.environ.get(DATA_ENV) or PROJECT_ROOT / "data")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"the course's data folder {folder} does not exist. Set {DATA_ENV} to a folder holding "
            "mnist/ and checkpoints/, as the data/ folder of the course's repository does."
        )
    return folder
