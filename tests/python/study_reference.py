#!/usr/bin/env python3
"""Independent reference for src/metrics/study.rs.

    study_reference.py INPUT.json   # written by tests/integration/metrics_study.rs; prints JSON results

Mann-Whitney U: scipy.stats.mannwhitneyu (two-sided, continuity correction, methods auto /
exact / asymptotic). Cohen's kappa: sklearn.metrics.cohen_kappa_score. Fleiss' kappa:
statsmodels.stats.inter_rater.fleiss_kappa (method "fleiss"). Bland-Altman: numpy mean and
sample standard deviation (ddof=1) of the differences, limits ±1.96 SD. Box plots
(src/metrics/plots.rs): numpy.percentile quartiles (default linear interpolation) of the finite
values, whiskers by matplotlib's boxplot rule (the most extreme values within 1.5 IQR of the
box), outliers beyond them.
"""
import json
import sys

import numpy as np
from scipy.stats import mannwhitneyu
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa


def main():
    spec = json.load(open(sys.argv[1]))
    out = {"mwu": [], "cohen": [], "fleiss": [], "bland_altman": [], "box": []}
    for c in spec["mwu"]:
        r = {}
        for method in ("auto", "exact", "asymptotic"):
            res = mannwhitneyu(c["x"], c["y"], alternative="two-sided", method=method)
            r[method] = {"u1": float(res.statistic), "p": float(res.pvalue)}
        out["mwu"].append(r)
    for c in spec["cohen"]:
        a, b = np.array(c["a"]), np.array(c["b"])
        if c.get("roi") is not None:
            roi = np.array(c["roi"]) != 0
            a, b = a[roi], b[roi]
        out["cohen"].append(float(cohen_kappa_score(a, b)))
    for c in spec["fleiss"]:
        raters = np.array(c["masks"]).T  # subjects × raters
        if c.get("roi") is not None:
            raters = raters[np.array(c["roi"]) != 0]
        table, _ = aggregate_raters((raters != 0).astype(int), n_cat=2)
        out["fleiss"].append(float(fleiss_kappa(table, method="fleiss")))
    for c in spec["bland_altman"]:
        d = np.array(c["a"], dtype=float) - np.array(c["b"], dtype=float)
        bias, sd = float(np.mean(d)), float(np.std(d, ddof=1))
        out["bland_altman"].append({"bias": bias, "sd": sd, "lower": bias - 1.96 * sd, "upper": bias + 1.96 * sd})
    for c in spec.get("box", []):
        v = np.array([x for x in c if x is not None], dtype=float)
        v = np.sort(v[np.isfinite(v)])
        q1, med, q3 = (float(x) for x in np.percentile(v, [25, 50, 75]))
        iqr = q3 - q1
        lo = float(v[v >= q1 - 1.5 * iqr].min())
        hi = float(v[v <= q3 + 1.5 * iqr].max())
        out["box"].append(
            {"n": int(v.size), "q1": q1, "median": med, "q3": q3, "lower": lo, "upper": hi,
             "outliers": [float(x) for x in v[(v < lo) | (v > hi)]]}
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
