"""The FCN feature extractor of the FCN-based metrics: the network (model.py), its files (weights.py), the
trained FCN per prepared file and label column (store.py, and its command train.py), and FID / IS on its
features (fid.py)."""
