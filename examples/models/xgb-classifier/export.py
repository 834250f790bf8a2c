"""A small XGBoost binary classifier trained on synthetic data, saved as ``model.json``.

XGBoost models take no DataInputConfig (NEO_REFERENCE §2.3), so ``inputs`` is unused.
Training is single-threaded with a fixed seed, so the file is the same every time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

N_FEATURES = 4


def train() -> Any:
    """A 10-tree booster fitted on 256 synthetic rows."""
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(0)
    features = rng.normal(size=(256, N_FEATURES)).astype(np.float32)
    labels = (features[:, 0] + 0.5 * features[:, 1] - features[:, 2] > 0).astype(np.float32)
    params = {
        "objective": "binary:logistic",
        "max_depth": 3,
        "eta": 0.3,
        "seed": 0,
        "nthread": 1,
        "tree_method": "hist",
    }
    return xgb.train(params, xgb.DMatrix(features, label=labels), num_boost_round=10)


def export(output_dir: Path, inputs: Any = None) -> None:
    """Train the booster and write ``output_dir/model.json``."""
    train().save_model(str(Path(output_dir) / "model.json"))
