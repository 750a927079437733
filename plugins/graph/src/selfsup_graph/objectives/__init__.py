"""Graph self-supervised objectives: GraphMAE, GRACE, link reconstruction, multi-task."""
