"""Siamese losses: contrastive, batch-hard triplet, Koch's BCE on |f1 - f2|, cosine embedding.

Pair losses take (f1, f2, same) with ``same`` a bool/0-1 tensor; the triplet loss
takes a P x K batch (embeddings, person labels) and mines inside it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("contrastive", "triplet", "bce-l1", "cosine")
PAIR_LOSSES = ("contrastive", "bce-l1", "cosine")


def contrastive_loss(f1: torch.Tensor, f2: torch.Tensor, same: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Hadsell, Chopra & LeCun 2006: d^2 for same pairs, max(0, margin - d)^2 for different ones."""
    same = same.float()
    distance = F.pairwise_distance(f1, f2, eps=0.0)
    return (same * distance.pow(2) + (1 - same) * F.relu(margin - distance).pow(2)).mean() / 2


def pairwise_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """Euclidean distance matrix; the clamp keeps the sqrt's gradient finite on the diagonal."""
    squared = (embeddings.unsqueeze(1) - embeddings.unsqueeze(0)).pow(2).sum(-1)
    return squared.clamp_min(1e-12).sqrt()


def batch_hard(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per anchor: (distance to its farthest positive, distance to its nearest negative)
    (Hermans, Beyer & Leibe 2017)."""
    distances = pairwise_distances(embeddings)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    hardest_positive = distances.masked_fill(~same | eye, float("-inf")).max(dim=1).values
    hardest_negative = distances.masked_fill(same, float("inf")).min(dim=1).values
    return hardest_positive, hardest_negative


def triplet_batch_hard_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    positive, negative = batch_hard(embeddings, labels)
    valid = torch.isfinite(positive) & torch.isfinite(negative)  # anchors with no positive or no negative
    if not bool(valid.any()):
        return embeddings.sum() * 0.0
    return F.relu(positive[valid] - negative[valid] + margin).mean()


class L1Head(nn.Module):
    """Koch et al.: p(same) = sigmoid(w . |f1 - f2| + b)."""

    def __init__(self, embedding_size: int):
        super().__init__()
        self.linear = nn.Linear(embedding_size, 1)

    def logit(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        return self.linear((f1 - f2).abs()).squeeze(1)

    def forward(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logit(f1, f2))


def bce_l1_loss(head: L1Head, f1: torch.Tensor, f2: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    # the logit form is the numerically stable sigmoid + BCE
    return F.binary_cross_entropy_with_logits(head.logit(f1, f2), same.float())


def cosine_loss(f1: torch.Tensor, f2: torch.Tensor, same: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """torch's CosineEmbeddingLoss: 1 - cos for same pairs, max(0, cos - margin) otherwise."""
    target = same.float() * 2 - 1
    return F.cosine_embedding_loss(f1, f2, target, margin=margin)


def pair_loss(name: str, f1, f2, same, head: L1Head | None = None, margin: float | None = None) -> torch.Tensor:
    if name == "contrastive":
        return contrastive_loss(f1, f2, same, 1.0 if margin is None else margin)
    if name == "bce-l1":
        return bce_l1_loss(head, f1, f2, same)
    if name == "cosine":
        return cosine_loss(f1, f2, same, 0.3 if margin is None else margin)
    raise ValueError(f"{name!r} is not a pair loss; choose one of {', '.join(PAIR_LOSSES)}")
