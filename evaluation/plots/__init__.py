"""Plots: clinical-style drawing of signal windows (windows.py), the figures of an evaluation report
(figures.py) and the reconstruction PNG of first-stage training (recon.py). The epoch and `generate.py --plot`
grid is evaluation/sample_grid.py."""
