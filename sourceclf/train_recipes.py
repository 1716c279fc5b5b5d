"""Recipes that train the models shipped with sourceclf.

Run one with::

    python -m sourceclf.train_recipes margnet-photometry-sg --data-dir ../shared/data

Each recipe reads public SDSS data, splits it with a fixed seed into training,
validation (early stopping), calibration (conformal sets) and test parts,
trains, evaluates on the test part (which it never sees otherwise), and writes
the model directory (card, weights, calibration) into the registry.  The split
functions are importable, so the test suite can check each shipped model on
exactly the rows its recipe held out.

The recipes live in `sourceclf.recipes.photometric` and the data and split in
`sourceclf.recipes.data`; this module is their public face and the
``python -m sourceclf.train_recipes`` command recorded in the model cards.
"""

import sys

from .recipes.data import (SPLIT_FRACTIONS, SPLIT_SEED, default_data_dir, read_recipe_table,
                           recipe_split)
from .recipes.photometric import (GBDT_SG_GRID, RECIPES, bayesian_margnet_photometry_sg,
                                  feature_model, fit_network, gbdt_photometry_sg, main,
                                  margnet_photometry_sg, network_settings, train_photometric,
                                  ugriz_sgq)

__all__ = ["RECIPES", "SPLIT_FRACTIONS", "SPLIT_SEED", "GBDT_SG_GRID", "recipe_split",
           "read_recipe_table", "default_data_dir", "fit_network", "network_settings",
           "train_photometric", "margnet_photometry_sg", "ugriz_sgq",
           "bayesian_margnet_photometry_sg", "gbdt_photometry_sg", "feature_model", "main"]

if __name__ == "__main__":
    sys.exit(main())
