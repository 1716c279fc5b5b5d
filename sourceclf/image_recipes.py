"""Recipes that train the shipped image models on simulated SDSS stamps.

Run them with::

    python -m sourceclf.image_recipes all --data-dir ../shared/data

on simulation version 9, the shipped models' (`SIMULATIONS`; ``--simulation
10`` renders the crowded trial's; each model card's ``training['recipe']``
names the command and version that made it), or one of ``margnet-cnn-sgq``,
``margnet-sgq``, ``margformer-sgq`` and their Bayesian variants
``bayesian-margnet-sgq``, which reuses the members of ``margnet-sgq`` and
trains a variational head, and ``bayesian-margformer-sgq`` (``--refresh``
recomputes an installed model's card checks, accuracy per seeing and
magnitude, domain and real-frame checks, without training it).  No
labelled SDSS cutouts ship with sourceclf's data, so these models learn from
simulated stamps: `sourceclf.recipes.image_training_set` says how they are made.

The rows are split with `sourceclf.train_recipes.recipe_split` (stratified,
seed 42) into training, validation (early stopping; the ensemble's head),
calibration (conformal sets) and test parts; test metrics in the cards are on
held-out *simulated* stamps.  To train the same architectures on real labelled
cutouts use ``sourceclf.train(table, cutouts, model="margformer")`` (or
``"margnet-ensemble"``, ``"margnet-cnn"``).

The code lives in `sourceclf.recipes.image_training_set` (the simulation),
`sourceclf.recipes.frame_checks` (checks on a real frame),
`sourceclf.recipes.image` (the recipes) and `sourceclf.recipes.image_cli` (their command
line); this module is their public face and
the ``python -m sourceclf.image_recipes`` command recorded in the model cards.
"""

import sys

from .recipes.frame_checks import (devrad_from_fluxes, frame_extended_sources,
                                   frame_galaxy_check, frame_star_check, luptitude,
                                   real_frame_catalog)
from .recipes.image import (ANN_CONFIG, CNN_CONFIG, MARGFORMER_CONFIG, RECIPES, cnn_member,
                            fwhm_cnn, margformer_sgq, margnet_cnn_sgq, margnet_sgq, refresh_card)
from .recipes.image_cli import main
from .recipes.image_training_set import (MAGNITUDE_RANGES, SIMULATION, SIMULATIONS,
                                         render_varied_psf, simulated_sgq_catalog,
                                         simulated_training_set)
from .recipes.stamp_realism import SATURATION, add_realism, saturate

__all__ = ["RECIPES", "MAGNITUDE_RANGES", "SIMULATION", "SIMULATIONS", "SATURATION",
           "simulated_sgq_catalog", "add_realism", "saturate", "render_varied_psf",
           "simulated_training_set", "luptitude", "devrad_from_fluxes",
           "real_frame_catalog", "frame_star_check", "frame_extended_sources",
           "frame_galaxy_check", "CNN_CONFIG", "ANN_CONFIG", "MARGFORMER_CONFIG",
           "margnet_cnn_sgq", "fwhm_cnn", "cnn_member", "margnet_sgq", "margformer_sgq",
           "refresh_card", "main"]

if __name__ == "__main__":
    sys.exit(main())
