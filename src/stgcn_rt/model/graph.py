"""The ST-GCN skeleton graph and its "spatial" partition adjacency.

This reproduces the public ST-GCN reference exactly, quirk included: hop distances are only
computed up to ``max_hop`` (1 by default), so joints farther than that from the centre all have an
infinite distance to it and compare as *equally* far. Checkpoints trained with the reference depend
on that, so it is kept on purpose.
"""

from __future__ import annotations

import numpy as np

from stgcn_rt.errors import StgcnError
from stgcn_rt.model.layouts import Layout


def hop_distance(num_nodes: int, edges: tuple[tuple[int, int], ...], max_hop: int = 1) -> np.ndarray:
    """Hop distance between every pair of joints; ``inf`` beyond ``max_hop``."""
    adjacency = np.zeros((num_nodes, num_nodes))
    for i, j in edges:
        adjacency[i, j] = adjacency[j, i] = 1
    distance = np.full((num_nodes, num_nodes), np.inf)
    reach = np.stack([np.linalg.matrix_power(adjacency, d) > 0 for d in range(max_hop + 1)])
    for d in range(max_hop, -1, -1):
        distance[reach[d]] = d
    return distance


def normalize_digraph(adjacency: np.ndarray) -> np.ndarray:
    """Divide each column by its degree (``A @ D^-1``), leaving isolated columns at zero."""
    degree = adjacency.sum(axis=0)
    inverse = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    return adjacency * inverse[None, :]


def spatial_adjacency(
    layout: Layout, center: int | None = None, max_hop: int = 1, dilation: int = 1
) -> np.ndarray:
    """The (K, V, V) "spatial" partition: root, centripetal and centrifugal neighbours.

    Entry ``[k, j, i]`` weights the message from joint ``j`` to joint ``i`` (the reference's
    convention, consumed as ``einsum('nkctv,kvw->nctw')``).
    """
    center = layout.center if center is None else center
    num = layout.num_joints
    if not 0 <= center < num:
        raise StgcnError(f"centre joint {center} is out of range for layout {layout.name} (0..{num - 1})")
    self_links = tuple((i, i) for i in range(num))
    distance = hop_distance(num, self_links + layout.edges, max_hop)
    hops = range(0, max_hop + 1, dilation)
    normalized = normalize_digraph(np.isin(distance, list(hops)).astype(float))

    # to_center[j, i] compares joint j's distance to the centre with joint i's (inf == inf).
    dist_j = distance[:, center][:, None]
    dist_i = distance[:, center][None, :]
    parts = []
    for hop in hops:
        at_hop = distance == hop
        root = np.where(at_hop & (dist_j == dist_i), normalized, 0.0)
        if hop == 0:
            parts.append(root)
            continue
        close = np.where(at_hop & (dist_j > dist_i), normalized, 0.0)
        further = np.where(at_hop & (dist_j < dist_i), normalized, 0.0)
        parts.extend([root + close, further])
    return np.stack(parts)
