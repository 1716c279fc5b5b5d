"""The command line of the image recipes: ``python -m sourceclf.image_recipes NAME``.

It renders (or reads from its cache) the simulated training set
(`sourceclf.recipes.image_training_set.simulated_training_set`), trains the
recipes of `sourceclf.recipes.image` it names, saves each model with its
conformal thresholds, or, with ``--refresh``, recomputes an installed
model's card checks without training it.
"""

import argparse
import os
import time
from pathlib import Path

from ..conformal.thresholds import write_thresholds
from ..exceptions import InvalidInputError, SourceclfError
from ..models.card import ModelCard
from ..models.registry import MODEL_DIR, load_model
from ..utils._threads import torch_threads
from .frame_checks import real_frame_catalog
from .image import (FEATURE_SETS, RECIPES, cnn_member, fwhm_cnn, refresh_card,
                    refresh_frame_checks, same_simulation)
from .image_training_set import (SIMULATION, SIMULATIONS, simulated_training_set,
                                 simulation_settings)

__all__ = ["main"]


def main(argv=None):
    """Command line: ``python -m sourceclf.image_recipes NAME|all [options]``."""
    parser = argparse.ArgumentParser(prog="python -m sourceclf.image_recipes",
                                     description="Train sourceclf's shipped image models "
                                                 "on simulated stamps.")
    parser.add_argument("recipe", choices=sorted(RECIPES) + ["all", "simulate"])
    parser.add_argument("--refresh", action="store_true",
                        help="do not train: recompute the installed model's card checks "
                             "(accuracy per seeing and magnitude, domain, real-frame checks)")
    parser.add_argument("--refresh-frames", action="store_true",
                        help="do not train nor simulate: recompute the installed model's "
                             "checks on the real frames of field 4510-4-0030 alone")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="directory of the SDSS tables (default ../shared/data)")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where model directories go (default: the package registry)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="cache of the rendered stamps (default ~/.cache/sourceclf)")
    parser.add_argument("--n", type=int, default=SIMULATION["n"],
                        help="number of simulated sources")
    parser.add_argument("--simulation", type=int, choices=sorted(SIMULATIONS),
                        default=SIMULATION["version"],
                        help=f"simulation version (default {SIMULATION['version']}, the "
                             "shipped models'; each card names its own in its recipe)")
    parser.add_argument("--cnn", default=None,
                        help="margnet-sgq: a model (name or directory) trained on the same "
                             "simulation whose CNN is kept: a CNN reading the PSF's FWHM alone "
                             "(fwhm_cnn), or a margnet-sgq ensemble (its CNN member); only the "
                             "ANN and head are trained (default: the CNN is trained first, as "
                             "the shipped margnet-sgq's was)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes rendering the simulated stamps")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                        help="torch threads (1 is fastest on a busy machine)")
    args = parser.parse_args(argv)
    if args.cnn is not None and args.recipe not in ("margnet-sgq", "all"):
        parser.error(f"--cnn is for margnet-sgq (or all), not {args.recipe}")
    if args.cnn is not None and args.refresh:
        parser.error("--cnn keeps a CNN for training margnet-sgq; --refresh trains nothing")
    if args.refresh_frames and args.recipe == "simulate":
        parser.error("--refresh-frames takes a model name or all, not simulate")
    if args.refresh_frames and (args.refresh or args.cnn is not None):
        parser.error("--refresh-frames renders and trains nothing: not with --refresh or --cnn")
    if args.cnn is not None:  # checked before the simulation is rendered
        try:
            args.cnn = _kept_cnn(args.cnn, args.n, simulation_settings(args.simulation))
        except SourceclfError as err:
            parser.error(f"--cnn {args.cnn}: {err}")
    with torch_threads(args.threads):
        if args.refresh_frames:
            try:
                return _refresh_frames(args)
            except SourceclfError as err:  # the frames absent, a model that reads no images
                parser.exit(2, f"{parser.prog}: error: {err}\n")
        return _train(args)


def _refresh_frames(args):
    """`~sourceclf.recipes.image.refresh_frame_checks` of the models ``args`` names."""
    _, frames = real_frame_catalog(args.data_dir)  # read once for every card
    for name in list(RECIPES) if args.recipe == "all" else [args.recipe]:
        path = refresh_frame_checks(name, data_dir=args.data_dir, frames=frames)
        metrics = ModelCard.from_directory(path.parent).metrics  # the card, not the weights
        real = metrics.get("real_frame_stars", {})
        extended = metrics.get("real_frame_extended", {})
        print(f"{name}: real frame stars called point sources "
              f"{real.get('point_fraction')}, extended sources called GALAXY "
              f"{extended.get('galaxy_fraction')}; wrote {path}", flush=True)
    return 0


def _simulation_model(model, n, settings):
    """The image model ``model`` (installed, or a directory), trained on this simulation
    of ``n`` sources (``settings``: `same_simulation`); `SourceclfError` if it cannot be
    loaded or was trained on another."""
    clf = load_model(model)
    if not same_simulation(clf, n, settings["seed"], settings):
        raise InvalidInputError(f"trained on another simulation, not version "
                                f"{settings['version']} of {n} sources (its card: "
                                f"{clf.card.training.get('simulation')})")
    return clf


def _trained_model(model, n, settings):
    """`_simulation_model`, or None where there is none."""
    try:
        return _simulation_model(model, n, settings)
    except SourceclfError:
        return None


def _kept_cnn(model, n, settings):
    """The model ``--cnn`` names, checked: trained on this simulation (`_simulation_model`)
    and with a CNN that `~sourceclf.recipes.image.margnet_sgq` can stack (`cnn_member`)."""
    clf = _simulation_model(model, n, settings)
    cnn_member(clf)
    return clf


def _train(args):
    """Simulate the training set and train the recipes ``args`` names."""
    t0 = time.perf_counter()
    names = list(RECIPES) if args.recipe == "all" else [args.recipe]
    # Only the models reading MargNet's columns need them measured on the stamps ("simulate"
    # makes the whole set).
    columns = args.recipe == "simulate" or any(FEATURE_SETS[name] == "margnet24"
                                               for name in names)
    table, stamps = simulated_training_set(args.n, data_dir=args.data_dir,
                                           cache_dir=args.cache_dir, jobs=args.jobs,
                                           version=args.simulation, columns=columns)
    settings = simulation_settings(args.simulation)
    print(f"simulated {len(table)} sources in {time.perf_counter() - t0:.0f} s", flush=True)
    if args.recipe == "simulate":
        return 0
    out_dir = args.output_dir or MODEL_DIR
    if args.refresh:
        _, frames = real_frame_catalog(args.data_dir)  # read once for every card
        for name in names:
            path = refresh_card(name, table, stamps, data_dir=args.data_dir, frames=frames)
            print(f"{name}: card checks recomputed; wrote {path}", flush=True)
        return 0
    trained = {}
    for name in names:
        kwargs = {"data_dir": args.data_dir}
        if name == "margnet-sgq":
            cnn = args.cnn
            if cnn is None:  # as the shipped stack was
                print("margnet-sgq: training its CNN member (the PSF's FWHM alone: fwhm_cnn)",
                      flush=True)
                cnn = fwhm_cnn(table, stamps, data_dir=args.data_dir)
            else:
                print(f"margnet-sgq: keeping the CNN of {cnn.name}", flush=True)
            kwargs["cnn"] = cnn
        if name == "bayesian-margnet-sgq":
            kwargs["stack"] = (trained.get("margnet-sgq")
                               or _trained_model("margnet-sgq", args.n, settings))
            print(f"{name}: " + ("reusing the members of " + kwargs["stack"].name
                                 if kwargs["stack"] else "training its own members"),
                  flush=True)
        clf = RECIPES[name](table, stamps, **kwargs)
        trained[name] = clf
        path = clf.save(out_dir / name, overwrite=True)
        write_thresholds(path)  # the shipped conformal thresholds follow the new calibration
        test = clf.card.metrics["test"]
        real = clf.card.metrics.get("real_frame_stars")
        print(f"{name}: simulated test accuracy {test['accuracy']:.4f} (n={test['n']}), "
              f"macro F1 {test['f1_macro']:.4f}; {clf.card.extra['n_parameters']:,d} "
              f"parameters; trained in {clf.card.training['train_seconds_cpu']:.0f} CPU s "
              f"({clf.card.training['train_seconds_wall']:.0f} s wall)"
              + (f"; real frame stars called point sources: {real['point_fraction']:.3f}"
                 if real else "") + f"; wrote {path}", flush=True)
    return 0
