"""Reference values for DriftStatisticsTests, computed with scipy/numpy.

Run with the end-to-end test environment's Python:
    /root/.cache/switchyard/test-venv/bin/python Tests/SwitchyardMonitorTests/Scripts/drift_constants.py
and paste the printed values into DriftStatisticsTests.swift.
"""

import numpy as np
from scipy import stats

reference = np.array([120, 300, 280, 200, 100], dtype=float)
current = np.array([80, 250, 300, 250, 120], dtype=float)


def smoothed(counts, pseudocount=0.5):
    counts = counts + pseudocount
    return counts / counts.sum()


r, c = smoothed(reference), smoothed(current)
print("psi", repr(float(np.sum((c - r) * np.log(c / r)))))

# Binned KS: each value stands for its bin index, so scipy's exact-sample statistic is the binned one.
a = np.repeat(np.arange(5), reference.astype(int))
b = np.repeat(np.arange(5), current.astype(int))
ks = stats.ks_2samp(a, b, method="asymp")
print("ks", repr(float(ks.statistic)))
n, m = len(a), len(b)
print("ks_p_kolmogorov", repr(float(stats.kstwobign.sf(ks.statistic * np.sqrt(n * m / (n + m))))))

expected = r * current.sum()
chi = stats.chisquare(current, expected)
print("chi2", repr(float(chi.statistic)), "p", repr(float(chi.pvalue)))
print("chi2.sf(30, 7)", repr(float(stats.chi2.sf(30.0, 7))))
print("chi2.sf(3.5, 1)", repr(float(stats.chi2.sf(3.5, 1))))
print("chi2.sf(150, 100)", repr(float(stats.chi2.sf(150.0, 100))))
