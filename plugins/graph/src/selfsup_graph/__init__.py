"""selfsup-graph: graph self-supervised learning for selfsup (PyG encoders, GraphMAE, GRACE).

Import the submodules you need (``selfsup_graph.encoders``, ``selfsup_graph.objectives``,
...); importing the package itself loads neither torch nor torch_geometric, so that
``selfsup plugins`` stays fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
