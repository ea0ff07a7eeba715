"""Two label-noise baselines on the method interface, with their papers' default settings.

Both train on the noisy labels as one-hot targets (no mixing); only the loss differs from ERM.
Their rows in `methods` (names gce, sce) repeat the defaults declared here (a test checks it).

GCE  generalized cross-entropy, Zhang & Sabuncu, "Generalized Cross Entropy Loss for Training
     Deep Neural Networks with Noisy Labels", NeurIPS 2018: L_q = (1 - p_y^q) / q, between
     cross-entropy (q -> 0) and MAE (q = 1). q = 0.7, the value of the paper's experiments. The
     paper's truncated variant (L_q clipped at k = 0.5, pruning every 10 epochs) is not
     implemented: this is plain L_q.
SCE  symmetric cross-entropy, Wang et al., "Symmetric Cross Entropy for Robust Learning with
     Noisy Labels", ICCV 2019: alpha * CE + beta * RCE, where the reverse cross-entropy
     RCE = -sum_k p_k log q_k takes log 0 = A, so for a one-hot label RCE = -A (1 - p_y). The
     paper's CIFAR-10 settings: alpha = 0.1, beta = 1.0, A = -4. (The authors' released code
     clamps the label at 1e-4, i.e. A = log 1e-4 = -9.2; A = -4 is the value the paper states.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .api import Method, soft_cross_entropy


def gce_loss(logits: torch.Tensor, targets: torch.Tensor, q: float) -> torch.Tensor:
    """Mean L_q = (1 - p_t^q) / q, p_t the probability the network gives the target (for
    probability targets, sum_k t_k p_k); in fp32."""
    p = F.softmax(logits.float(), dim=1)
    # A true class whose probability underflows to 0 would give an infinite gradient of p^q.
    p_t = (p * targets).sum(1).clamp_min(1e-12)
    return ((1.0 - p_t.pow(q)) / q).mean()


def reverse_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, A: float) -> torch.Tensor:
    """Mean RCE = -sum_k p_k log t_k with log 0 taken as A; in fp32."""
    p = F.softmax(logits.float(), dim=1)
    log_t = torch.where(targets > 0, targets.clamp_min(1e-38).log(), torch.full_like(p, A))
    return -(p * log_t).sum(1).mean()


class GCE(Method):
    name = "gce"
    label = "GCE"
    help = "generalized cross-entropy (Zhang & Sabuncu 2018), loss (1 - p_y^q) / q"
    params = {"q": 0.7}

    def __init__(self, q: float = 0.7) -> None:
        if not 0.0 < q <= 1.0:
            raise ValueError(f"GCE needs 0 < q <= 1, got {q}")
        super().__init__(q=q)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return gce_loss(logits, targets, self.q)


class SCE(Method):
    name = "sce"
    label = "SCE"
    help = "symmetric cross-entropy (Wang et al. 2019), alpha CE + beta reverse CE, log 0 = A"
    params = {"alpha": 0.1, "beta": 1.0, "A": -4.0}

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, A: float = -4.0) -> None:
        if alpha < 0 or beta < 0 or alpha + beta == 0:
            raise ValueError(f"SCE needs alpha, beta >= 0, not both 0, got {alpha}, {beta}")
        if A >= 0:
            raise ValueError(f"SCE needs A < 0 (it stands for log 0), got {A}")
        super().__init__(alpha=alpha, beta=beta, A=A)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (self.alpha * soft_cross_entropy(logits, targets)
                + self.beta * reverse_cross_entropy(logits, targets, self.A))
