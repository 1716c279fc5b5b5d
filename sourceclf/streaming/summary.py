"""Counts over a classified catalog, as the ``sourceclf-classify`` command prints them."""

import json

import numpy as np

from ..columns import decode_strings
from ..conformal.set_columns import parse_set_column
from ..conformal.shift import set_shift, shift_message

__all__ = ["StreamSummary"]


class StreamSummary:
    """Counts over a classified catalog, accumulated chunk by chunk.

    Attributes
    ----------
    path : `pathlib.Path` or None
        The output file.
    n_rows : int
        Rows classified (including rows that could not be).
    meta : dict
        The output table's ``meta`` (model name, version, confidence...).
    counts : dict
        Predicted class -> number of rows.
    n_masked : int
        Rows that could not be classified.
    n_flagged : int
        Classified rows with a non-empty ``pred_flag``.
    n_out_of_domain : int
        Classified rows flagged ``out_of_domain``.
    set_sizes : dict
        Set-size column name -> {size: count}.
    truth_column : str or None
        Column of true classes, if any.
    n_true, n_correct : int
        With ``truth_column``: rows with both a prediction and a true class,
        and how many of them agree.
    chunk_size : int or None
        Rows per chunk used (None: classified in one piece).
    """

    def __init__(self, truth_column=None):
        self.truth_column = truth_column
        self.path = None
        self.n_rows = 0
        self.meta = {}
        self.counts = {}
        self.n_masked = 0
        self.n_flagged = 0
        self.n_out_of_domain = 0
        self.set_sizes = {}
        self.n_true = 0
        self.n_correct = 0
        self.chunk_size = None

    @classmethod
    def from_table(cls, table, truth_column=None):
        """The summary of a whole classified table."""
        s = cls(truth_column)
        s.add(table)
        return s

    def add(self, table):
        """Add the counts of one classified chunk."""
        if not self.meta:
            self.meta = dict(table.meta)
        self.n_rows += len(table)
        pred = table["pred_class"]
        mask = np.ma.getmaskarray(pred)
        values, counts = np.unique(np.ma.getdata(pred)[~mask], return_counts=True)
        names = decode_strings(values) if len(values) else np.array([], str)
        for v, c in zip(names, counts):
            self.counts[str(v)] = self.counts.get(str(v), 0) + int(c)
        self.n_masked += int(mask.sum())
        flags = np.ma.getdata(table["pred_flag"])
        empty = b"" if flags.dtype.kind == "S" else ""
        self.n_flagged += int(np.sum((flags != empty) & ~np.ma.getmaskarray(table["pred_flag"])
                                     & ~mask))
        text = flags.astype(str) if flags.dtype.kind == "S" else flags
        self.n_out_of_domain += int(np.sum(np.char.find(text.astype(str), "out_of_domain") >= 0))
        for name in table.colnames:
            parsed = parse_set_column(name)
            if parsed is None or parsed[0] != "size":
                continue
            size = np.ma.masked_array(table[name]).compressed()
            hist = self.set_sizes.setdefault(name, {})
            for k, c in zip(*np.unique(size, return_counts=True)):
                hist[int(k)] = hist.get(int(k), 0) + int(c)
        truth_name = self.truth_column
        if truth_name is not None and truth_name in table.colnames and len(table):
            truth = table[truth_name]
            ok = ~mask & ~np.ma.getmaskarray(truth)
            t_values, t_inverse = np.unique(np.ma.getdata(truth)[ok], return_inverse=True)
            p_values, p_inverse = np.unique(np.ma.getdata(pred)[ok], return_inverse=True)
            t_names = decode_strings(t_values) if len(t_values) else np.array([], str)
            p_names = decode_strings(p_values) if len(p_values) else np.array([], str)
            self.n_true += int(ok.sum())
            self.n_correct += int(np.sum(p_names[p_inverse] == t_names[t_inverse]))

    @property
    def accuracy(self):
        """Fraction of classified rows whose prediction equals ``class`` (NaN if none)."""
        return self.n_correct / self.n_true if self.n_true else float("nan")

    def lines(self):
        """Human-readable lines, as printed by ``sourceclf-classify``."""
        model = f"model: {self.meta.get('CLFMODEL')} v{self.meta.get('CLFMVER')}"
        options = []
        if self.meta.get("CLFPREC", "fp32") != "fp32":
            options.append(str(self.meta["CLFPREC"]))
        if "CLFCOMP" in self.meta:
            options.append("torch.compile" if self.meta["CLFCOMP"] else
                           "torch.compile failed: eager")
        if options:
            model += f" ({', '.join(options)})"
        lines = [model, f"rows: {self.n_rows}"]
        lines.append("predicted: " + (", ".join(f"{v} {c}" for v, c in sorted(
            self.counts.items())) or "none"))
        lines.append(f"not classified (see pred_flag): {self.n_masked}")
        if "CLFAUTO" in self.meta:
            lines.insert(1, str(self.meta["CLFAUTO"]))
        if self.n_flagged:
            lines.append(f"classified but flagged: {self.n_flagged}")
        if self.n_out_of_domain:
            lines.append(f"out_of_domain: {self.n_out_of_domain} rows lie outside the data the "
                         "model was trained on (see sourceclf-classify --show-model "
                         f"{self.meta.get('CLFMODEL')}); their classes are a guess beyond "
                         "its tested range")
        for name, hist in self.set_sizes.items():
            if hist:
                _, level = parse_set_column(name)
                level = (str(self.meta.get("CLFCONF", "")) if level is None else
                         f"{level:g}")
                text = ", ".join(f"{k}: {hist.get(k, 0)}" for k in range(max(hist) + 1))
                lines.append(f"prediction sets at {level}: sizes {text}; "
                             f"empty sets {hist.get(0, 0)}")
        alarm = self.shift_alarm()
        if alarm:
            lines.append(f"SHIFT ALARM: {alarm}")
        return lines

    def shift_alarm(self):
        """The shift alarm over every row summarised so far, or None.

        Compares the set sizes of the whole catalog with the calibration
        rates recorded by `sourceclf.classify` in ``meta['CLFSHREF']`` (see
        `sourceclf.conformal.shift`).
        """
        references = json.loads(self.meta.get("CLFSHREF", "{}") or "{}")
        for name, hist in self.set_sizes.items():
            _, level = parse_set_column(name)
            level = float(self.meta.get("CLFCONF", 0)) if level is None else level
            reference = references.get(f"{level:g}")
            if reference is None or not hist:
                continue
            sizes = np.repeat(np.array(list(hist), dtype=float), list(hist.values()))
            departures = set_shift(sizes, reference)
            if departures:
                return shift_message(departures, level, self.meta.get("CLFMODEL"))
        return None
