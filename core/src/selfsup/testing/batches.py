"""Small random batches per modality, for shape and contract tests (never for quality)."""

from __future__ import annotations

from typing import Any

__all__ = ["SHAPES", "make_batch"]

#: Default item shapes per modality (without the batch dimension).
SHAPES: dict[str, tuple[int, ...]] = {
    "image": (3, 32, 32),
    "audio": (16000,),
    "signal": (1, 256),
    "ecg": (12, 250),
    "volume": (1, 16, 16, 16),
    "tabular": (16,),
    "any": (16,),
}


def make_batch(modality: str, batch_size: int = 4, seed: int = 0, **kwargs: Any) -> Any:
    """A small random batch for a modality (synthetic: for shape tests only).

    Args:
        modality: A key of :data:`SHAPES`, or ``"graph"`` (a PyG ``Batch`` of small
            random graphs; needs torch-geometric).
        batch_size: Items (graphs) in the batch.
        seed: Seed of the generator.
        **kwargs: ``shape=(...)`` to override the item shape; for graphs
            ``num_nodes`` (default 10) and ``num_features`` (default 8).

    Raises:
        ValueError: Unknown modality.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    if modality == "graph":
        from torch_geometric.data import Batch, Data

        n, f = kwargs.get("num_nodes", 10), kwargs.get("num_features", 8)
        graphs = []
        for _ in range(batch_size):
            edges = torch.randint(0, n, (2, 3 * n), generator=gen)
            edges = torch.cat([edges, edges.flip(0)], 1)
            graphs.append(Data(x=torch.randn(n, f, generator=gen), edge_index=edges))
        return Batch.from_data_list(graphs)
    shape = kwargs.get("shape") or SHAPES.get(modality)
    if shape is None:
        raise ValueError(
            f"no default shape for modality {modality!r}; pass shape=(...) or use one of "
            f"{', '.join([*SHAPES, 'graph'])}"
        )
    return torch.randn(batch_size, *shape, generator=gen)
