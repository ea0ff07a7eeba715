"""L∞ PGD with a random start (Madry et al. 2018), built for ε sweeps.

One restart follows torchattacks.PGD step for step, so for the same random start it crafts the
same images in fp32 (tests/test_attacks_strong.py checks it within 1e-6):

    x_0 = clamp(x + U(−ε, ε), 0, 1)
    x_{t+1} = clamp(x + clamp(x_t + a·sign(∇x CE(model(x_t), y)) − x, −ε, ε), 0, 1)

* Step size: a = 2.5·ε/steps unless one is given (Madry et al.'s rule: the iterates can travel
  2.5 radii, enough to reach the ball's boundary from any random start and move along it).
* Random start: for restart r of the c-th call of sweep (the c-th batch), the uniform noise is
  drawn from a generator seeded with start_seed(r, c), derived from --seed; the same draw is
  scaled to every ε, as torchattacks.PGD would draw it after torch.manual_seed(start_seed(r, c)).
  The global RNG is never touched, so results do not depend on what ran before.
* Restarts: per image the best over restarts: the first restart whose example fools the model
  (restarts after that skip the image), else the example of highest cross-entropy.
* Several ε at once: the (ε, image) pairs still to attack are stacked into one batch (up to
  `stack` ε copies of a batch), as I-FGSM does; every row gets the gradient a single-ε,
  single-batch call gives it (the loss is the per-row cross-entropy summed, over len(y)).

PGDL2 is the same attack in the L2 ball, following torchattacks.PGDL2 step for step (within
1e-6 for the same random start, tests/test_attacks_l2.py), with the same step rule, restarts and
stacking:

    x_0 = clamp(x + ε·u·z/‖z‖₂, 0, 1),  z ~ N(0, I), u ~ U(0, 1) per image
    g_t = ∇x CE(model(x_t), y),  x'_t = x_t + a·g_t/(‖g_t‖₂ + 1e-10)
    x_{t+1} = clamp(x + (x'_t − x)·min(1, ε/‖x'_t − x‖₂), 0, 1)

Clamping to [0, 1] after the projection only shrinks |δ| pixel by pixel, so ‖δ‖₂ ≤ ε holds for
the returned images (checked on every batch).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..evaluation.device import autocast
from ..evaluation.predict import check_eval_mode
from .base import Attack, check_eps, check_perturbation
from .defaults import DEFAULT_RESTARTS, DEFAULT_SEED, DEFAULT_STEPS, pgd_step

# torchattacks.PGDL2's eps_for_division: keeps a zero gradient's normalised step at zero
L2_DIVISION_EPS = 1e-10


class PGD(Attack):
    """L∞ projected gradient descent on the cross-entropy, random start, per-image best of
    `restarts`; step_size None = 2.5·ε/steps (in [0, 1] units like ε)."""

    name = "pgd"
    norm = "linf"

    def __init__(self, model: nn.Module, steps: int = DEFAULT_STEPS, step_size: float | None = None,
                 restarts: int = DEFAULT_RESTARTS, seed: int = DEFAULT_SEED,
                 precision: str = "fp32", stack: int | None = None) -> None:
        super().__init__(model, precision)
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        if restarts < 1:
            raise ValueError(f"restarts must be at least 1, got {restarts}")
        if step_size is not None and not step_size > 0:
            raise ValueError(f"step size must be positive, got {step_size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.steps, self.step_size, self.restarts = steps, step_size, restarts
        self.seed, self.stack = seed, stack
        self.calls = 0  # sweep calls so far: each batch gets its own random starts

    def settings(self, eps):
        return self.steps, pgd_step(eps, self.steps, self.step_size)

    def start_seed(self, restart: int, call: int) -> int:
        """Seed of the random start of restart `restart` in the `call`-th sweep call."""
        return int(np.random.SeedSequence([self.seed, restart, call]).generate_state(1, np.uint64)[0]
                   >> np.uint64(1))

    def start_noise(self, x: torch.Tensor, eps: float, restart: int, call: int) -> torch.Tensor:
        """U(−ε, ε) noise shaped like x: torchattacks' draw after manual_seed(start_seed)."""
        g = torch.Generator(device=x.device).manual_seed(self.start_seed(restart, call))
        return torch.empty_like(x).uniform_(-eps, eps, generator=g)

    def sweep(self, x, y, eps):
        check_eps(eps, self.norm)
        x, y = x.to(self.device), y.to(self.device)
        call, self.calls = self.calls, self.calls + 1
        n = len(y)
        out = [x.detach().clone() for _ in eps]  # ε = 0 stays x, as in torchattacks
        todo = [i for i, e in enumerate(eps) if e != 0]
        if not todo or n == 0:
            return out
        best_loss = {i: torch.full((n,), -float("inf"), device=x.device) for i in todo}
        fooled = {i: torch.zeros(n, dtype=torch.bool, device=x.device) for i in todo}
        k = len(todo) if not self.stack else max(1, self.stack)
        for r in range(self.restarts):
            for s in range(0, len(todo), k):
                group = todo[s:s + k]
                live = [(i, (~fooled[i]).nonzero().flatten()) for i in group]
                live = [(i, idx) for i, idx in live if len(idx)]
                if not live:
                    continue
                adv, ori, rows_y = self._iterate(x, y, eps, live, r, call)
                need_pred = self.restarts > 1
                if need_pred:
                    with torch.no_grad(), autocast(self.device, self.precision):
                        logits = self.model(adv)
                    loss = F.cross_entropy(logits.float(), rows_y, reduction="none")
                    wrong = logits.float().argmax(1) != rows_y
                at = 0
                for i, idx in live:
                    m = len(idx)
                    part = adv[at:at + m]
                    if not need_pred:
                        out[i][idx] = part
                    else:
                        l_i, w_i = loss[at:at + m], wrong[at:at + m]
                        take = w_i | (l_i > best_loss[i][idx])
                        out[i][idx[take]] = part[take]
                        best_loss[i][idx[take]] = l_i[take]
                        fooled[i][idx[w_i]] = True
                    at += m
        for i in todo:
            check_perturbation(out[i], x, eps[i], self.norm)
        return out

    def _iterate(self, x: torch.Tensor, y: torch.Tensor, eps, live, restart: int, call: int):
        """PGD on the stacked (ε, image) rows of live = [(ε index, image indices)]."""
        shape = (-1,) + (1,) * (x.dim() - 1)
        full = len(y)
        ori = torch.cat([x if len(idx) == full else x[idx] for _, idx in live])
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            ori = ori.contiguous(memory_format=torch.channels_last)
        rows_y = torch.cat([y if len(idx) == full else y[idx] for _, idx in live])
        sizes = [len(idx) for _, idx in live]
        e = torch.tensor([eps[i] for i, _ in live], dtype=x.dtype,
                         device=x.device).repeat_interleave(torch.tensor(sizes, device=x.device)).view(shape)
        a = torch.tensor([self.settings(eps[i])[1] for i, _ in live], dtype=x.dtype,
                         device=x.device).repeat_interleave(torch.tensor(sizes, device=x.device)).view(shape)
        noise = torch.cat([self.start_noise(x, eps[i], restart, call)[idx if len(idx) != full else slice(None)]
                           for i, idx in live])
        adv = torch.clamp(ori + noise, min=0, max=1).detach()
        for _ in range(self.steps):
            adv = self._step(adv, ori, self._gradient(adv, rows_y, full), a, e)
        check_perturbation(adv, ori, e.flatten(), self.norm)
        return adv, ori, rows_y

    def _step(self, adv: torch.Tensor, ori: torch.Tensor, grad: torch.Tensor, a: torch.Tensor,
              e: torch.Tensor) -> torch.Tensor:
        """One L∞ step: along the gradient's sign, projected on the ε-ball and [0, 1]."""
        adv = adv.detach() + a * grad.sign()
        delta = torch.maximum(torch.minimum(adv - ori, e), -e)
        return torch.clamp(ori + delta, min=0, max=1).detach()

    def _gradient(self, x: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
        """∇x Σ_rows CE / n: each row's gradient is the one torchattacks' mean over a batch of n
        images gives it."""
        check_eval_mode(self.model)
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            with autocast(self.device, self.precision):
                logits = self.model(x)
            loss = F.cross_entropy(logits.float(), y, reduction="none").sum() / n
            grad = torch.autograd.grad(loss, x)[0]
        check_eval_mode(self.model)
        return grad


class PGDL2(PGD):
    """L2 projected gradient descent (torchattacks.PGDL2): the normalised gradient step, the
    projection on the L2 ball, and a random start uniform in radius (ε, step size in [0, 1]
    units; step_size None = 2.5·ε/steps, the L∞ rule)."""

    norm = "l2"

    def start_noise(self, x: torch.Tensor, eps: float, restart: int, call: int) -> torch.Tensor:
        """ε·u·z/‖z‖₂ per image, z ~ N(0, I), u ~ U(0, 1): torchattacks.PGDL2's draws (z, then
        u) after manual_seed(start_seed), with its order of operations. z is drawn in the
        default (NCHW) layout whatever x's memory format, so a channels-last batch gets the same
        start as torchattacks gives its NCHW copy (torchattacks.PGDL2 itself cannot take a
        channels-last batch: it view()s it)."""
        g = torch.Generator(device=x.device).manual_seed(self.start_seed(restart, call))
        z = torch.empty(x.shape, dtype=x.dtype, device=x.device).normal_(generator=g)
        n = z.view(len(x), -1).norm(p=2, dim=1).view(-1, *(1,) * (x.dim() - 1))
        u = torch.zeros_like(n).uniform_(0, 1, generator=g)
        return z * (u / n * eps)

    def _step(self, adv, ori, grad, a, e):
        """One L2 step: along the gradient over its L2 norm, projected on the ε-ball and
        [0, 1]."""
        shape = (-1,) + (1,) * (adv.dim() - 1)
        norms = grad.flatten(1).norm(p=2, dim=1) + L2_DIVISION_EPS
        adv = adv.detach() + a * (grad / norms.view(shape))
        delta = adv - ori
        factor = torch.minimum(e.flatten() / delta.flatten(1).norm(p=2, dim=1),
                               torch.ones(len(delta), dtype=delta.dtype, device=delta.device))
        return torch.clamp(ori + delta * factor.view(shape), min=0, max=1).detach()
