"""Directions whose image changes are orthogonal: a starting basis and a training term.

At a code z the generator's Jacobian J(z) (P pixels x d) maps a latent step to an image
change; its Gram J^T J (d x d) says how the image changes of two latent directions overlap.
Directions whose image changes are orthogonal at *every* z (the criterion of OroJaR, Wei et
al. 2021, used here to pick directions of a fixed generator instead of training one) are
the joint diagonaliser of the Grams over sampled codes: the orthogonal Q = expm(S - S^T)
minimising the mean over codes of sum_{k != l} (Q G Q^T)_kl^2 / ((Q G Q^T)_kk (Q G Q^T)_ll).
A single Gram's eigenvectors (SeFa's idea, applied to J instead of the first weight) are
not unique where eigenvalues repeat; the joint criterion over many codes is, and on
``shapes`` it picks out the true factors (x, y, rotation, hue: |cos| 0.91-0.99).

:func:`orthogonality_loss` is the same criterion as a training term for any direction model
(two directions per code, by finite differences), which keeps the learned paths there.

No maintained library does approximate joint diagonalisation of PSD matrices in torch
(pyriemann's ajd needs numpy and another dependency), so it is a small Adam loop here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.nn import functional as F

from latentedit.workers.methods.inversion.optim import Steps, blocking
from latentedit.workers.models.runtime import LoadedModel

log = logging.getLogger(__name__)


@torch.no_grad()
def _grams(
    model: LoadedModel, samples: int, image_size: int, seed: int, step: float = 1e-2
) -> Iterator[Tensor]:
    """Per code, the (d, d) float64 Gram J^T J of the generator's output at ``image_size``
    px, J by central differences (2d renders per code, batched; any generator, no autograd)."""
    d = model.latent_dim
    z = torch.randn(samples, d, generator=torch.Generator().manual_seed(seed))
    eye = torch.eye(d) * step
    for code in z:
        codes = torch.cat([code + eye, code - eye])  # (2d, d)
        x = model.forward(codes.to(model.device)).float()
        if x.shape[-1] != image_size:
            x = F.interpolate(x, size=(image_size, image_size), mode="area")
        x = x.flatten(1).double().cpu()
        jac = (x[:d] - x[d:]) / (2 * step)  # (d, P): rows are J's columns
        yield jac @ jac.T


def off_diagonal(q: Tensor, grams: Tensor) -> Tensor:
    """Mean over codes of the normalised squared off-diagonal of Q G Q^T (0: diagonal)."""
    m = q @ grams @ q.T
    d = torch.diagonal(m, dim1=1, dim2=2)
    off = m - torch.diag_embed(d)
    scale = d.mean()
    den = d[:, :, None] * d[:, None, :] + (1e-6 * scale) ** 2
    return (off.square() / den).sum((1, 2)).mean()


def jacobian_skew_steps(
    model: LoadedModel,
    samples: int = 48,
    image_size: int = 32,
    iterations: int = 1500,
    starts: int = 4,
    seed: int = 0,
    chunk: int = 50,
) -> Steps[Tensor]:
    """S (d, d) float32 such that the rows of expm(S - S^T) jointly diagonalise the Grams of
    ``samples`` codes, ordered by mean image change (largest first); a step generator that
    yields every ``chunk`` codes or optimiser iterations (so a job can be cancelled while
    it runs). ~13 s on ``shapes`` (d = 16) with 128 codes and 4 starts, one thread."""
    grams_list = []
    for i, gram in enumerate(_grams(model, samples, image_size, seed)):
        grams_list.append(gram)
        if i % chunk == chunk - 1:
            yield
    grams = torch.stack(grams_list)
    grams = grams / torch.diagonal(grams, dim1=1, dim2=2).mean()  # scale-free
    d = grams.shape[-1]
    g = torch.Generator().manual_seed(seed)
    best: tuple[float, Tensor] | None = None
    for _ in range(starts):  # the criterion has local minima: keep the best of a few starts
        s = torch.nn.Parameter(0.5 * torch.randn(d, d, generator=g, dtype=torch.float64))
        opt = torch.optim.Adam([s], lr=0.02)
        for it in range(iterations):
            loss = off_diagonal(torch.linalg.matrix_exp(s - s.T), grams)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if it % chunk == chunk - 1:
                yield
        final = float(off_diagonal(torch.linalg.matrix_exp(s - s.T).detach(), grams))
        log.debug("joint diagonalisation start: loss %.4f", final)
        if best is None or final < best[0]:
            best = (final, s.detach().clone())
    assert best is not None
    return _sorted_skew(best[1], grams.mean(0)).float()


jacobian_skew = blocking(jacobian_skew_steps)


@torch.no_grad()
def _sorted_skew(skew: Tensor, mean_gram: Tensor) -> Tensor:
    """S' with the rows of expm(S' - S'^T) those of expm(S - S^T) by decreasing energy
    (row q: q^T G q); S itself when the rotation's logarithm is not real-valued here."""
    q = torch.linalg.matrix_exp(skew - skew.T)
    order = torch.argsort(torch.diagonal(q @ mean_gram @ q.T), descending=True)
    q = q[order]
    if torch.linalg.det(q) < 0:  # a row permutation may flip det: keep det +1
        q[-1] = -q[-1]
    evals, evecs = torch.linalg.eig(q)  # log of a rotation: real, skew-symmetric
    log_q = (evecs @ torch.diag(torch.log(evals)) @ torch.linalg.inv(evecs)).real
    if not torch.allclose(torch.linalg.matrix_exp(log_q), q, atol=1e-6):
        log.warning("joint diagonalisation: basis left unsorted (no real logarithm)")
        return skew
    return log_q / 2  # expm(S' - S'^T) = expm(log q) = q


def orthogonality_loss(x: Tensor, x_k: Tensor, x_l: Tensor, step: float) -> Tensor:
    """Mean cos^2 between the image changes x_k - x and x_l - x (all (N, C, H, W)) of two
    directions k != l moved by ``step`` from the same codes: 0 = orthogonal effects.
    Changes below ~1e-3 per pixel and unit step count as none (no division blow-up)."""
    a, b = (x_k - x).flatten(1), (x_l - x).flatten(1)
    floor = (1e-6 * a.shape[1] * step * step) ** 2
    dot = (a * b).sum(1)
    return (dot.square() / (a.square().sum(1) * b.square().sum(1) + floor)).mean()
