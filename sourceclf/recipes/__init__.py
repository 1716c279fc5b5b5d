"""How the shipped models were made, and the published comparisons rerun.

* `sourceclf.recipes.data`: the SDSS tables the recipes read and their fixed split;
* `sourceclf.recipes.photometric`: the photometric models
  (``python -m sourceclf.train_recipes NAME``);
* `sourceclf.recipes.image_training_set`: the simulated stamps the image
  models learn from;
* `sourceclf.recipes.measured_columns`: MargNet's catalog columns measured on
  those stamps by profile fits, as SDSS measures them;
* `sourceclf.recipes.frame_checks`: checks of a model on a real SDSS frame;
* `sourceclf.recipes.extent_truth`: point-like or extended for every bright
  source of a real frame, measured as SDSS measures it;
* `sourceclf.recipes.deblended_truth`: the truth's extent measured with
  each source's neighbours fitted and subtracted;
* `sourceclf.recipes.injection`: known stars and galaxies drawn into real
  frames, a truth that holds in crowded fields;
* `sourceclf.recipes.image`: the image models, and
  `sourceclf.recipes.image_cli` their command line
  (``python -m sourceclf.image_recipes NAME``);
* `sourceclf.recipes.cards`: what every recipe writes into its model card;
* `sourceclf.recipes.experiment_results` and `sourceclf.recipes.experiments`:
  MargNet's experiments (``python -m sourceclf.experiments run ...``).

The modules ``sourceclf.train_recipes``, ``sourceclf.image_recipes`` and
``sourceclf.experiments`` re-export their public names and command lines.
"""

__all__ = []
