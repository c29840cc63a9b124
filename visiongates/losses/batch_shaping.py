"""The (generalized) batch-shaping loss: a Cramér-von Mises distance between gate outputs and a prior.

Bejnordi et al., "Batch-Shaping for Learning Conditional Channel Gated Networks", ICLR 2020 (arXiv:1907.06627),
Eq. 2: sort the N gate values x_(1) <= ... <= x_(N) of one gate over a batch; the empirical CDF at x_(i) is
i / (N + 1); the loss is (1/N) sum_i (i / (N + 1) - F*(x_(i)))^2 for a prior CDF F*.

Havtorn et al., "MSViT: Dynamic Mixed-Scale Tokenization for Vision Transformers", ICCVW 2023 (arXiv:2307.02321),
generalize it (gBaS): one relaxed-Bernoulli prior RB(mu_k, tau_k) per gate position k with learnable mean and
temperature, a hyperprior (Beta or Normal) that batch-shapes the T learned means and so sets the overall share of
open gates, and an L1 term on the temperatures that favours peaked (near-binary) priors. Facts of the loss are from
the authors' public code (Qualcomm-AI-research/batchshaping); this implementation is written independently.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "beta_cdf",
    "normal_cdf",
    "relaxed_bernoulli_cdf",
    "batch_shaping_loss",
    "GeneralizedBatchShapingLoss",
]

_CF_TERMS = 128  # most continued-fraction terms; stops earlier once converged (shape parameters up to ~1000)


def _betainc_cf(x: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Regularised incomplete beta I_x(a, b) by its continued fraction (DLMF 8.17.22), valid for x < (a+1)/(a+b+2).

    Modified Lentz evaluation of 1 / (1 + d1 / (1 + d2 / (1 + ...))) with
    d_{2m+1} = -(a+m)(a+b+m) x / ((a+2m)(a+2m+1)) and d_{2m} = m(b-m) x / ((a+2m-1)(a+2m)).
    """
    tiny = 1e-300
    log_front = a * torch.log(x) + b * torch.log1p(-x) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    c = torch.ones_like(x)
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = torch.where(d.abs() < tiny, torch.full_like(d, tiny), d).reciprocal()
    value = d.clone()
    for m in range(1, _CF_TERMS + 1):
        for coefficient in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + coefficient * d
            d = torch.where(d.abs() < tiny, torch.full_like(d, tiny), d).reciprocal()
            c = 1.0 + coefficient / c
            c = torch.where(c.abs() < tiny, torch.full_like(c, tiny), c)
            value = value * d * c
        if m % 4 == 0 and bool(((d * c - 1.0).abs() < 1e-15).all()):  # converged to float64 round-off
            break
    return torch.exp(log_front) * value / a


class _BetaCdf(torch.autograd.Function):
    """I_x(a, b) with fixed shape parameters; the gradient in x is the Beta density."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, a: float, b: float) -> torch.Tensor:
        x64 = x.detach().double().clamp(0.0, 1.0)
        inner = x64.clamp(1e-300, 1.0 - 1e-16)
        lower = inner < (a + 1.0) / (a + b + 2.0)
        direct = _betainc_cf(torch.where(lower, inner, torch.full_like(inner, 0.5 * (a + 1.0) / (a + b + 2.0))), a, b)
        mirrored = 1.0 - _betainc_cf(torch.where(lower, torch.full_like(inner, 0.5), 1.0 - inner), b, a)
        out = torch.where(lower, direct, mirrored)
        out = torch.where(x64 <= 0.0, torch.zeros_like(out), torch.where(x64 >= 1.0, torch.ones_like(out), out))
        ctx.save_for_backward(x)
        ctx.shape = (a, b)
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        a, b = ctx.shape
        x64 = x.double()
        inside = (x64 > 0.0) & (x64 < 1.0)
        safe = torch.where(inside, x64, torch.full_like(x64, 0.5))
        log_pdf = (a - 1.0) * torch.log(safe) + (b - 1.0) * torch.log1p(-safe)
        log_pdf = log_pdf - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
        pdf = torch.where(inside, log_pdf.exp(), torch.zeros_like(x64))
        return grad * pdf.to(grad.dtype), None, None


def beta_cdf(x: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """CDF of Beta(a, b) at x (differentiable in x; a, b > 0 are constants)."""
    if a <= 0 or b <= 0:
        raise ValueError(f"Beta shape parameters must be positive, got a={a}, b={b}")
    return _BetaCdf.apply(x, float(a), float(b))


def normal_cdf(x: torch.Tensor, mean: float | torch.Tensor, std: float | torch.Tensor) -> torch.Tensor:
    """CDF of N(mean, std^2) at x."""
    return 0.5 * (1.0 + torch.erf((x - mean) / (std * math.sqrt(2.0))))


def relaxed_bernoulli_cdf(
    x: torch.Tensor, mean: torch.Tensor, temperature: torch.Tensor, eps: float = 1e-3
) -> torch.Tensor:
    """CDF of the relaxed Bernoulli (binary Concrete) RB(mean, temperature) at x, clipped to [eps, 1 - eps].

    A sample is sigmoid((logit(mean) + L) / temperature) with L standard logistic, so
    F(x) = sigmoid(temperature * logit(x) - logit(mean)); P(X > 1/2) = mean, and temperature -> 0 gives a Bernoulli.
    """
    x = x.clamp(eps, 1.0 - eps)
    return torch.sigmoid(temperature * torch.logit(x) - torch.logit(mean))


def batch_shaping_loss(x: torch.Tensor, cdf: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Batch-shaping loss (Bejnordi et al. 2020, Eq. 2) of each row of x against a prior CDF, averaged over rows.

    x: [T, N] (T independent gates, N samples each) or [N]. cdf maps the sorted x ([T, N]) to prior CDF values; it
    sees the rows sorted, so per-row prior parameters must be shaped [T, 1].
    """
    rows = x.reshape(1, -1) if x.dim() == 1 else x
    num = rows.shape[-1]
    ordered, _ = torch.sort(rows, dim=-1)
    ecdf = torch.arange(1, num + 1, device=x.device, dtype=ordered.dtype) / (num + 1)
    return (ecdf - cdf(ordered)).square().sum(-1).div(num).mean()


class GeneralizedBatchShapingLoss(nn.Module):
    """gBaS (Havtorn et al. 2023, Sec. 3.2) over a grid of gate positions.

    Learnable per-position relaxed-Bernoulli priors RB(mu_k, tau_k), mu = sigmoid(mean_logit), tau =
    sigmoid(temperature_logit); a hyperprior on the means with mean `target` (Beta(c*t, c*(1-t)) with concentration c,
    or Normal(t, std)); L1 on tau. loss = prior + hyperprior + temperature_weight * mean|tau|, times `weight`.

    The parameters live on the grid the module was built for; another grid resamples them bilinearly.
    """

    def __init__(
        self,
        grid_size: tuple[int, int],
        target: float,
        weight: float = 1.0,
        hyperprior: str = "beta",
        concentration: float = 10.0,
        hyperprior_std: float = 0.1,
        temperature_weight: float = 0.1,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 < target < 1.0:
            raise ValueError(f"the batch-shaping target share must lie strictly between 0 and 1, got {target}")
        if hyperprior not in ("beta", "normal"):
            raise ValueError(f"hyperprior must be 'beta' or 'normal', got {hyperprior!r}")
        self.grid_size = tuple(grid_size)
        self.target = float(target)
        self.weight = float(weight)
        self.hyperprior = hyperprior
        self.concentration = float(concentration)
        self.hyperprior_std = float(hyperprior_std)
        self.temperature_weight = float(temperature_weight)
        dd = {"device": device, "dtype": dtype}
        self.mean_logit = nn.Parameter(torch.full(self.grid_size, math.log(target / (1.0 - target)), **dd))
        self.temperature_logit = nn.Parameter(torch.zeros(self.grid_size, **dd))

    def extra_repr(self) -> str:
        return f"grid={self.grid_size}, target={self.target}, weight={self.weight}, hyperprior={self.hyperprior}"

    def priors(self, grid_size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, temperatures) of the per-position priors on `grid_size` (default: the module's own grid)."""
        logits = torch.stack((self.mean_logit, self.temperature_logit))
        if grid_size is not None and tuple(grid_size) != self.grid_size:
            logits = F.interpolate(logits[None], size=tuple(grid_size), mode="bilinear", align_corners=False)[0]
        return torch.sigmoid(logits[0]), torch.sigmoid(logits[1])

    def hyperprior_cdf(self, x: torch.Tensor) -> torch.Tensor:
        if self.hyperprior == "beta":
            return beta_cdf(x, self.concentration * self.target, self.concentration * (1.0 - self.target))
        return normal_cdf(x, self.target, self.hyperprior_std)

    def terms(self, gates: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unweighted terms for gate probabilities `gates` [B, H, W] (in [0, 1], before any sampling noise)."""
        means, temperatures = self.priors(gates.shape[-2:])
        flat_means, flat_temps = means.reshape(-1, 1), temperatures.reshape(-1, 1)
        rows = gates.float().flatten(1).t()  # [T, B]: one row per position
        prior = batch_shaping_loss(rows, lambda s: relaxed_bernoulli_cdf(s, flat_means.float(), flat_temps.float()))
        hyper = batch_shaping_loss(means.reshape(-1).float(), self.hyperprior_cdf)
        return {"prior": prior, "hyperprior": hyper, "temperature": temperatures.abs().mean().float()}

    def forward(self, gates: torch.Tensor) -> torch.Tensor:
        terms = self.terms(gates)
        return self.weight * (terms["prior"] + terms["hyperprior"] + self.temperature_weight * terms["temperature"])
