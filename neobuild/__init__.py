"""neobuild: build SageMaker Neo inputs for every model in a repository."""

from __future__ import annotations

__version__ = "0.1.0"
