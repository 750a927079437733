"""Modality-free evaluators (``core:`` ids).

* :mod:`.linear_probe` -- ``core:linear-probe``: logistic regression on frozen features.
* :mod:`.knn` -- ``core:knn``: temperature-weighted cosine kNN.
* :mod:`.clustering` -- ``core:kmeans``: k-means, NMI and ARI against the labels.
* :mod:`.rankme` -- ``core:rankme``: effective rank of the embeddings (label-free).
* :mod:`.alignment` -- ``core:alignment-uniformity``: needs the arm's view maker.

Shared helpers (split protocol, standardisation, accuracy) live in :mod:`._features`;
NMI and ARI in :mod:`._cluster_metrics`. Submodules are imported lazily by the registry.
"""
