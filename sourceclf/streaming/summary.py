"""Counts over a classified catalog, as the ``sourceclf-classify`` command prints them."""

import json

import numpy as np

from ..columns import decode_strings
from ..conformal.flag_sets import calibrated_flags, flag_set_groups
from ..conformal.reference_rates import combine_set_bins
from ..conformal.set_columns import parse_set_column, probability_classes
from ..conformal.shift import set_shift, shift_message
from ..exceptions import InvalidInputError

__all__ = ["StreamSummary", "group_set_sizes"]


class StreamSummary:
    """Counts over a classified catalog, accumulated chunk by chunk.

    Attributes
    ----------
    path : `pathlib.Path` or None
        The output file.
    n_rows : int
        Rows classified (including rows that could not be).
    meta : dict
        The output table's ``meta`` (model name, version, confidence...):
        the first chunk's, with counts (``CLFNOOD``) added over every chunk
        and the flags of every chunk's ``CLFFLCAL``.
    counts : dict
        Predicted class -> number of rows.
    n_masked : int
        Rows that could not be classified.
    unclassified_counts : dict
        Reason (``pred_flag``'s ``;``-separated parts: ``off_frame``,
        ``missing:u,g``...) -> rows not classified with it.
    n_flagged : int
        Classified rows with a non-empty ``pred_flag``.
    flag_counts : dict
        Reason (``pred_flag``'s ``;``-separated parts: ``crowded``,
        ``blended``, ``empty_set:0.9``...) -> classified rows flagged with it.
    n_out_of_domain : int
        Classified rows flagged ``out_of_domain``.
    truth_column : str or None
        Column of true classes, if any (name and labels in any case, bytes
        decoded).
    n_true, n_correct : int
        With ``truth_column``: rows with both a prediction and a true class
        the model predicts, and how many of them agree.
    unknown_labels : dict
        With ``truth_column``: true class the model does not predict (QSO for
        a star/galaxy model, a typo such as ``QSO_BA``) -> classified rows
        with it, left out of the accuracy and coverage (as
        `sourceclf.evaluate` leaves them out).
    by_true_class : dict
        With ``truth_column``: true class -> (rows, rows predicted right).
    n_covered : dict
        With ``truth_column``: prediction-set column -> rows (of the
        ``n_true``) whose set holds the true class.
    chunk_size : int or None
        Rows per chunk used (None: classified in one piece).
    shift_bins : dict
        Level (``meta['CLFSHREF']``'s keys) -> the calibration rows' set-size
        rates per magnitude bin, with the catalog's rows in each summed over
        the chunks (`sourceclf.conformal.reference_set_bins`).
    flag_shift_bins : dict
        Flag -> level -> the same for the rows whose sets come from the
        model's calibration table of rows so flagged (``meta['CLFSHFLG']``).
    shift_set_sizes : dict
        Flag (``''``: the rows whose sets come from the model's calibration
        rows) -> set-size column name -> {size: count}: what the shift alarm
        compares with each reference (`sourceclf.conformal.check_set_shift`).
    """

    def __init__(self, truth_column=None):
        self.truth_column = truth_column
        self.path = None
        self.n_rows = 0
        self.meta = {}
        self.counts = {}
        self.n_masked = 0
        self.unclassified_counts = {}
        self.n_flagged = 0
        self.flag_counts = {}
        self.n_true = 0
        self.n_correct = 0
        self.by_true_class = {}
        self.unknown_labels = {}
        self._classes = []
        self.n_covered = {}
        self.chunk_size = None
        self.shift_bins = {}
        self.flag_shift_bins = {}
        self.shift_set_sizes = {}

    @property
    def set_sizes(self):
        """Set-size column name -> {size: count} over every classified row: the sum of
        `shift_set_sizes` over its groups."""
        total = {}
        for by_name in self.shift_set_sizes.values():
            for name, hist in by_name.items():
                _add_counts(total.setdefault(name, {}), hist)
        return total

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
        else:
            if "CLFNOOD" in table.meta:  # a count: over every chunk
                self.meta["CLFNOOD"] = (self.meta.get("CLFNOOD", 0)
                                        + int(table.meta["CLFNOOD"]))
            if "CLFFLCAL" in table.meta:  # the flags whose tables gave any chunk's rows sets
                self.meta["CLFFLCAL"] = ",".join(dict.fromkeys(
                    item for text in (self.meta.get("CLFFLCAL"), table.meta["CLFFLCAL"])
                    for item in str(text or "").split(",") if item))
        self.n_rows += len(table)
        pred = table["pred_class"]
        mask = np.ma.getmaskarray(pred)
        values, counts = np.unique(np.ma.getdata(pred)[~mask], return_counts=True)
        names = decode_strings(values) if len(values) else np.array([], str)
        for v, c in zip(names, counts):
            self.counts[str(v)] = self.counts.get(str(v), 0) + int(c)
        self.n_masked += int(mask.sum())
        self.add_shift_counts(table.meta, group_set_sizes(table))
        flags = np.ma.getdata(table["pred_flag"])
        empty = b"" if flags.dtype.kind == "S" else ""
        flagged = (flags != empty) & ~np.ma.getmaskarray(table["pred_flag"]) & ~mask
        self.n_flagged += int(np.sum(flagged))
        _count_reasons(self.flag_counts, flags[flagged])
        _count_reasons(self.unclassified_counts, flags[mask])
        if self.truth_column is not None:
            self._add_truth(table, pred, mask)

    def _add_truth(self, table, pred, mask):
        """Count the classified, labelled rows' agreements and set coverage."""
        name = next((c for c in table.colnames if c.lower() == self.truth_column.lower()),
                    None)
        if name is None:
            raise InvalidInputError(f"truth column '{self.truth_column}' is not a column of "
                                    "the catalog (names are matched in any case)")
        truth = table[name]
        if np.asarray(truth).dtype.kind in "biufc":
            raise InvalidInputError(f"truth column '{name}' holds numbers "
                                    f"({np.asarray(truth).dtype.name}), not class names such as "
                                    "STAR, GALAXY or QSO")
        ok = ~mask & ~np.ma.getmaskarray(truth)
        true = np.char.upper(decode_strings(np.ma.getdata(truth)[ok]))
        labelled = true != ""
        self._classes = probability_classes(table)
        unknown = labelled & ~np.isin(true, self._classes)
        for label in np.unique(true[unknown]).tolist():
            self.unknown_labels[label] = (self.unknown_labels.get(label, 0)
                                          + int(np.sum(true[unknown] == label)))
        labelled &= ~unknown
        rows, true = np.flatnonzero(ok)[labelled], true[labelled]
        right = np.char.upper(decode_strings(np.ma.getdata(pred)[rows])) == true
        self.n_true += len(rows)
        self.n_correct += int(right.sum())
        for label in np.unique(true).tolist():
            n, n_right = self.by_true_class.get(label, (0, 0))
            self.by_true_class[label] = (n + int(np.sum(true == label)),
                                         n_right + int(np.sum(right[true == label])))
        for column in table.colnames:
            parsed = parse_set_column(column)
            if parsed is None or parsed[0] != "set":
                continue
            sets = np.char.upper(decode_strings(np.ma.getdata(table[column])[rows]))
            held = np.char.find(np.char.add(np.char.add("|", sets), "|"),
                                np.char.add(np.char.add("|", true), "|")) >= 0
            self.n_covered[column] = self.n_covered.get(column, 0) + int(held.sum())

    @property
    def accuracy(self):
        """Fraction of classified, labelled rows predicted right (NaN if none)."""
        return self.n_correct / self.n_true if self.n_true else float("nan")

    def truth_lines(self):
        """Accuracy (overall, per true class) and set coverage per level, as printed; a line
        naming the true classes the model does not predict, if any."""
        left_out = []
        if self.unknown_labels:
            found = ", ".join(f"{label} {n}" for label, n in sorted(self.unknown_labels.items()))
            left_out = [f"left out of the accuracy: rows whose true class the model does not "
                        f"predict (it predicts {', '.join(self._classes)}): {found}"]
        if not self.n_true:
            return [f"accuracy against '{self.truth_column}': no classified row has a label "
                    "the model predicts"] + left_out
        per_class = ", ".join(f"{label} {k / n:.3f} ({n})"
                              for label, (n, k) in sorted(self.by_true_class.items()))
        lines = [f"accuracy against '{self.truth_column}': {self.accuracy:.3f} on "
                 f"{self.n_true} classified rows with a label; by true class: {per_class}"]
        lines += left_out
        for column, covered in self.n_covered.items():
            level = parse_set_column(column)[1]
            level = str(self.meta.get("CLFCONF", "")) if level is None else f"{level:g}"
            lines.append(f"coverage of the prediction sets at {level}: "
                         f"{covered / self.n_true:.3f} (share of those rows whose set holds "
                         "the true class)")
        return lines

    @property
    def n_out_of_domain(self):
        """Classified rows flagged ``out_of_domain`` (`flag_counts`)."""
        return self.flag_counts.get("out_of_domain", 0)

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
        lines.append(f"not classified (see pred_flag): {self.n_masked}"
                     + (f" ({_reasons(self.unclassified_counts)})"
                        if self.unclassified_counts else ""))
        if "CLFAUTO" in self.meta:
            lines.insert(1, str(self.meta["CLFAUTO"]))
        at = 1 + ("CLFAUTO" in self.meta)  # after the model's line and why it was chosen
        lines[at:at] = [str(self.meta[key])
                        for key in ("CLFCOLS", "CLFPSF", "CLFFPSF", "CLFREG") if key in self.meta]
        if self.n_flagged:
            lines.append(f"classified but flagged: {self.n_flagged} "
                         f"({_reasons(self.flag_counts)})")
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
                text = _size_text(hist)
                empty = hist.get(0, 0)
                why = (" (no class probable enough at this level: flagged empty_set in "
                       "pred_flag; their pred_class is a weak guess)" if empty else "")
                lines.append(f"prediction sets at {level}: sizes {text}; "
                             f"empty sets {empty}{why}")
                for flag in sorted(set(self.shift_set_sizes) - {""}):
                    own = self.shift_set_sizes[flag].get(name, {})
                    if sum(own.values()):
                        lines.append(f"  of which the {sum(own.values())} rows flagged '{flag}' "
                                     f"(sets calibrated on rows like them): sizes "
                                     f"{_size_text(own)}")
        if self.truth_column is not None:
            lines += self.truth_lines()
        alarm = self.shift_alarm()
        if alarm:
            lines.append(f"SHIFT ALARM: {alarm}")
        return lines

    def add_shift_counts(self, meta, set_sizes):
        """Add one part's counts for the shift alarm: its rows per magnitude bin
        (``meta['CLFSHREF']``, and ``meta['CLFSHFLG']`` by flag) and its set sizes
        per group (`group_set_sizes`), to the catalog's.

        Parameters
        ----------
        meta : dict-like
            A classified part's ``meta`` (`sourceclf.conformal.check_set_shift`).
        set_sizes : dict
            ``{flag: {column: {size: count}}}``, as `group_set_sizes` gives
            them (sizes may be strings, as JSON keeps them).
        """
        _sum_bins(self.shift_bins, json.loads(meta.get("CLFSHREF", "{}") or "{}"))
        for flag, levels in json.loads(meta.get("CLFSHFLG", "{}") or "{}").items():
            _sum_bins(self.flag_shift_bins.setdefault(flag, {}), levels)
        for flag, by_name in set_sizes.items():
            for name, hist in by_name.items():
                _add_counts(self.shift_set_sizes.setdefault(flag, {}).setdefault(name, {}), hist)

    @property
    def shift_references(self):
        """Level -> the set-size rates the shift alarm compares the whole catalog with.

        The calibration rows' rates weighted to the catalog's magnitudes
        (`sourceclf.conformal.combine_set_bins` of `shift_bins`).
        """
        return _references(self.shift_bins)

    def shift_alarm(self):
        """The shift alarm over every row summarised so far, or None.

        Compares the set sizes of the whole catalog with the calibration
        rates recorded by `sourceclf.classify` in each chunk's
        ``meta['CLFSHREF']``, weighted to the whole catalog's magnitudes
        (`shift_references`; see `sourceclf.conformal.shift`): the rows whose
        sets come from the model's calibration rows with those, the rows of
        each flag whose sets come from a table of their own with that
        table's (``meta['CLFSHFLG']``).
        """
        groups = [("", self.shift_references)]
        groups += [(flag, _references(levels))
                   for flag, levels in sorted(self.flag_shift_bins.items())]
        for flag, references in groups:
            for name, hist in self.shift_set_sizes.get(flag, {}).items():
                _, level = parse_set_column(name)
                level = float(self.meta.get("CLFCONF", 0)) if level is None else level
                reference = references.get(f"{level:g}")
                if reference is None or not hist:
                    continue
                sizes = np.repeat(np.array(list(hist), dtype=float), list(hist.values()))
                departures = set_shift(sizes, reference)
                if departures:
                    apart = sorted(f for f, sizes in self.shift_set_sizes.items()
                                   if f and any(sizes.values()))
                    return shift_message(departures, level, self.meta.get("CLFMODEL"),
                                         flag=flag or None, apart=apart)
        return None


def group_set_sizes(table, flags=None):
    """A classified table's set sizes per shift-alarm group.

    Parameters
    ----------
    table : `~astropy.table.Table`
        Classified rows, with ``pred_flag`` and set-size columns.
    flags : iterable of str, optional
        The flags whose rows got sets from a table of their own (default:
        those ``meta['CLFFLCAL']`` names).

    Returns
    -------
    set_sizes : dict
        ``{flag: {column: {size: count}}}``; flag ``''`` for the rows whose
        sets come from the model's calibration rows
        (`sourceclf.conformal.flag_set_groups`).  Unclassified rows are left
        out.
    """
    flags = calibrated_flags(table.meta) if flags is None else flags
    groups = flag_set_groups(np.ma.getdata(table["pred_flag"]), flags)
    out = {}
    for name in table.colnames:
        parsed = parse_set_column(name)
        if parsed is None or parsed[0] != "size":
            continue
        size = np.ma.masked_array(table[name])
        for group in np.unique(groups):
            _count_sizes(out.setdefault(str(group), {}).setdefault(name, {}),
                         size[groups == group].compressed())
    return out


def _size_text(hist):
    """``'0: 0, 1: 596, 2: 15'``: each set size up to the largest, with its count."""
    return ", ".join(f"{k}: {hist.get(k, 0)}" for k in range(max(hist) + 1))


def _count_sizes(hist, sizes):
    """Add each set size's count to ``hist`` ({size: count})."""
    _add_counts(hist, dict(zip(*np.unique(sizes, return_counts=True))))


def _add_counts(total, hist):
    """Add ``hist``'s counts ({size: count}; sizes may be strings, as JSON keeps them) to
    ``total``'s."""
    for size, count in hist.items():
        total[int(size)] = total.get(int(size), 0) + int(count)


def _sum_bins(total, levels):
    """Add one chunk's ``{level: bins}`` rows per bin to ``total``'s."""
    for key, bins in levels.items():
        old = total.setdefault(key, bins)
        if old is not bins and "rows" in old and len(old["rows"]) == len(bins.get("rows", ())):
            old["rows"] = [a + b for a, b in zip(old["rows"], bins["rows"])]
        # else: a file written before the bins keeps its first chunk's rates


def _references(levels):
    """Level -> the rates of ``{level: bins}`` weighted to the catalog's rows."""
    return {key: combine_set_bins(bins) if "rows" in bins else bins
            for key, bins in levels.items()}


def _count_reasons(counts, flags):
    """Add each ``;``-separated reason of ``flags`` (a column's values) to ``counts``."""
    if not len(flags):
        return
    for value, count in zip(*np.unique(decode_strings(flags), return_counts=True)):
        for reason in str(value).split(";"):
            if reason:
                counts[reason] = counts.get(reason, 0) + int(count)


def _reasons(counts):
    """``'93 empty_set:0.9, 21 out_of_domain'``: the commonest first."""
    return ", ".join(f"{count} {reason}" for reason, count in sorted(
        counts.items(), key=lambda item: (-item[1], item[0])))
