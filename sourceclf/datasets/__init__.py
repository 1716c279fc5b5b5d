"""MargNet's data: SDSS queries, image cutouts, the published arrays and splits.

Chaini et al. (2023, MNRAS 518, 3123; "MargNet") classify compact SDSS
sources from 24 photometric features and 5-band 32x32 stamps.  This package
gets data of that kind and reproduces the paper's experiments:

* `margnet_sql` writes the SkyServer / CasJobs SQL that selects spectroscopic
  objects with MargNet's features, and `query_sdss` runs it through
  `astroquery.sdss.SDSS` and returns a clean `~astropy.table.Table`
  (``sourceclf.datasets.sdss``);
* `get_cutouts` downloads SDSS frames (each frame once) and cuts stamps with
  `sourceclf.cutouts.make_cutouts` (``sourceclf.datasets.frames``);
* `load_margnet` reads the published numpy arrays (Zenodo record 6659435,
  mirrored in the ``sidchaini/MargNet`` repository) without loading the
  images into memory (``sourceclf.datasets.margnet``);
* `split_experiment`, `compact_mask` and `faint_mask` give the train /
  validation / test rows of experiments 1, 2 and 3 exactly as the authors'
  notebooks made them (``sourceclf.datasets.splits``).

The network is touched only by `query_sdss` and `get_cutouts`, and only
through astroquery, so its cache and configuration apply.
"""

from .frames import FrameCutouts, get_cutouts
from .margnet import MARGNET_CLASSES, MARGNET_FEATURES, LazyStamps, load_margnet
from .sdss import decode_objid, margnet_sql, query_sdss
from .splits import compact_mask, faint_mask, split_experiment

__all__ = ["MARGNET_FEATURES", "MARGNET_CLASSES", "margnet_sql", "query_sdss",
           "decode_objid", "get_cutouts", "FrameCutouts", "load_margnet", "LazyStamps",
           "split_experiment", "compact_mask", "faint_mask"]
