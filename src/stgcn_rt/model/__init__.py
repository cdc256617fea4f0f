"""Skeleton layouts, the graph, the ST-GCN network and checkpoint loading."""
