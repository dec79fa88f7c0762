"""Membership-inference audits per patient (docs/evaluation.md section 2) and their reports.

    python -m evaluation.privacy --config configs/ctg/privacy.yaml --attack loss|lira|rmia|dcr|domias|attribute [--shadows K] [--references R]

members.py (population, member manifest, balanced keep matrix), audit.py (the audit folder), models.py (target and shadow models trained
one after another by diffusion.train_loop.train, resumable), loss_scores.py (white-box per-patient losses at
fixed noise), lira.py (online/offline LiRA), rmia.py (RMIA with 1-4 reference models), dcr.py and domias.py (black box,
synthetic data only; their inputs in synthetic.py), attribute.py and attribute_run.py (attribute inference),
metrics.py (AUC, balanced accuracy, TPR at low FPR with Clopper-Pearson intervals), report.py (JSON schema,
Markdown, log-log ROC), oracle.py (memorising / held-out "generators" for the calibration tests).
"""
