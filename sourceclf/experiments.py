"""Reproduce the published MargNet / MargFormer comparisons on your own data.

Chaini et al. (2023, MNRAS 518, 3123) and the MargFormer preprint compare
their networks with a decision tree, a random forest and XGBoost on three
experiments (1: compact objects, 2: faint compact objects, 3: experiment-1
models tested on the faint set), for star/galaxy (SG) and
star/galaxy/quasar (SGQ) classification, reporting accuracy and macro
precision, recall and F1.  `run_experiment` trains each model on the
experiment's training split (`sourceclf.datasets.split_experiment`), tests it
on the test split, repeats for several seeds and summarises the metrics as
mean and standard deviation; `ExperimentResult.write` writes the summary as
Markdown and reStructuredText tables in the paper's format, the per-seed
results as JSON, and the confusion matrices as a PNG figure.

From the command line::

    python -m sourceclf.experiments run --table faint.fits --experiment 2 \\
        --task sg --models dt,rf,gbdt,margnet --seeds 0,1,2 --output report/

    python -m sourceclf.experiments run --data "MargNet/Experiment 1/dataset" \\
        --experiment 1 --task sgq --models dt,rf,xgboost,margnet,margformer \\
        --device cuda --output report/

Model names: ``dt``, ``rf``, ``gbdt``, ``xgboost`` (see
`sourceclf.models.classical`), ``margnet`` (MargNet's ANN, architecture
``margnet-ann``), and any other registered architecture, e.g. ``margformer``
or ``margnet-cnn``: image models run only when cutouts were given (``--data``)
and the architecture is registered in this installation; otherwise they are
skipped with the reason in the report.

The runner lives in `sourceclf.recipes.experiments` and the results in
`sourceclf.recipes.experiment_results`; this module is their public face and
the ``python -m sourceclf.experiments`` command.
"""

import sys

from .recipes.experiment_results import PUBLISHED, ExperimentResult
from .recipes.experiments import TASK_CLASSES, load_experiment_data, main, run_experiment

__all__ = ["PUBLISHED", "TASK_CLASSES", "ExperimentResult", "run_experiment",
           "load_experiment_data", "main"]

if __name__ == "__main__":
    sys.exit(main())
