"""Mixed-scale token layout of MSViT (Havtorn et al., ICCVW 2023, arXiv:2307.02321, Sec. 3.1).

The fine grid is Hf x Wf (patch p); coarse regions are 2 x 2 blocks of fine cells (patch 2p), Hc x Wc = Hf // 2 x
Wf // 2 of them; an odd last row / column of fine cells belongs to no region and stays fine. A region is covered by
exactly one of: its 4 fine tokens (gate open) or its coarse token (gate closed).

"Slot" layout: one slot per fine cell, in raster order. A fine region fills its 4 slots with its fine tokens; a coarse
region puts its coarse token in its top-left slot and leaves the other 3 empty (masked). Every path starts from it:
- static (export): all Hf*Wf slots with a key mask (same shapes for every input, compute of the plain ViT);
- dropped: the occupied slots gathered in raster order, padded to the longest sequence of the batch (compute falls);
- dense: every slot of a coarse region takes the region's token (unpooling), for NCHW features.

`kept_patch_pixels` gives the pixels each kept slot embeds, so the dropped path can embed only the tokens it keeps.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.fx._symbolic_trace import is_fx_symbolic_tracing

__all__ = [
    "MixedScaleLayout",
    "mixed_scale_layout",
    "mixed_scale_slots",
    "kept_slots",
    "compact_slots",
    "kept_patch_pixels",
    "scatter_slots",
    "unpool_slots",
]


class MixedScaleLayout(NamedTuple):
    """fine_cells [B, Hf, Wf]: 1 where a cell holds its own fine token (straight-through gradients in training);
    occupied [B, Hf*Wf] bool: slots that hold a token (fine cell or a coarse region's top-left slot)."""

    fine_cells: torch.Tensor
    occupied: torch.Tensor
    fine_grid: tuple[int, int]
    coarse_grid: tuple[int, int]


def _upsample2(x: torch.Tensor, fine_grid: tuple[int, int], value: float) -> torch.Tensor:
    """[B, Hc, Wc, ...] -> [B, Hf, Wf, ...]: each region's value on its 2 x 2 cells, `value` on leftover cells."""
    up = x.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    pad_h, pad_w = fine_grid[0] - up.shape[1], fine_grid[1] - up.shape[2]
    if is_fx_symbolic_tracing() or pad_h or pad_w:  # FX: pad by the traced amounts (no branch on a proxy)
        trailing = up.dim() - 3
        up = F.pad(up, (0, 0) * trailing + (0, pad_w, 0, pad_h), value=value)
    return up


def _top_left(fine_grid: tuple[int, int], coarse_grid: tuple[int, int], device: torch.device) -> torch.Tensor:
    """[Hf, Wf] bool: the top-left cell of every coarse region."""
    rows = torch.arange(fine_grid[0], device=device)
    cols = torch.arange(fine_grid[1], device=device)
    in_rows = (rows % 2 == 0) & (rows < 2 * coarse_grid[0])
    in_cols = (cols % 2 == 0) & (cols < 2 * coarse_grid[1])
    return in_rows[:, None] & in_cols[None, :]


def mixed_scale_layout(fine_mask: torch.Tensor, fine_grid: tuple[int, int]) -> MixedScaleLayout:
    """Layout for a region mask `fine_mask` [B, Hc, Wc] (1 = fine, 0 = coarse; may carry straight-through grads)."""
    coarse_grid = (fine_mask.shape[1], fine_mask.shape[2])
    fine_cells = _upsample2(fine_mask, fine_grid, 1.0)
    top_left = _top_left(fine_grid, coarse_grid, fine_mask.device)
    occupied = (fine_cells > 0.5) | top_left
    return MixedScaleLayout(fine_cells, occupied.flatten(1), tuple(fine_grid), coarse_grid)


def mixed_scale_slots(fine: torch.Tensor, coarse: torch.Tensor, layout: MixedScaleLayout) -> torch.Tensor:
    """Slot tokens [B, Hf*Wf, C] from fine [B, Hf, Wf, C] and coarse [B, Hc, Wc, C] tokens.

    slot = m * fine + (1 - m) * [top-left] * coarse: with m exactly 0/1 a slot is one token or zero, and in training
    the straight-through m carries the task gradient to the gate.
    """
    m = layout.fine_cells[..., None].to(fine.dtype)
    top_left = _top_left(layout.fine_grid, layout.coarse_grid, fine.device)[None, :, :, None].to(fine.dtype)
    coarse_up = _upsample2(coarse, layout.fine_grid, 0.0)
    slots = m * fine + (1.0 - m) * top_left * coarse_up
    return slots.flatten(1, 2)


def kept_slots(occupied: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index [B, L] of each sample's occupied slots (raster order), padded to the batch's longest sequence, and
    valid [B, L] bool (False marks padding, whose index points at an empty slot)."""
    if occupied.shape[0] == 1:  # one image: no padding; a data-dependent length that torch.export can trace
        index = occupied[0].nonzero()[:, 0]
        return index[None], occupied.new_ones(1, index.shape[0])
    counts = occupied.sum(1)
    length = int(counts.max())
    order = torch.argsort((~occupied).to(torch.int8), dim=1, stable=True)[:, :length]
    valid = torch.arange(length, device=occupied.device)[None, :] < counts[:, None]
    return order, valid


def compact_slots(slots: torch.Tensor, occupied: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gather the occupied slots of each sample (see `kept_slots`).

    Returns (tokens [B, L, C], index [B, L] of their slots, valid [B, L] bool; False marks padding).
    """
    index, valid = kept_slots(occupied)
    if slots.shape[0] == 1:
        return slots[:, index[0]], index, valid
    tokens = torch.gather(slots, 1, index[..., None].expand(-1, -1, slots.shape[-1]))
    return tokens, index, valid


def _gather_rows(rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """rows [B, N, ...] at index [B, L] -> [B, L, ...]."""
    return rows[torch.arange(rows.shape[0], device=rows.device)[:, None], index]


def _patch_rows(images: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, C, h*p, w*p] -> [B, h*w, C*p*p]: each p x p patch flattened (channel, row, column), raster order.

    The same rows as F.unfold(images, p, stride=p).transpose(1, 2), about 8x faster on CPU for 224 px."""
    batch, chans, height, width = images.shape
    rows = images.reshape(batch, chans, height // patch, patch, width // patch, patch).permute(0, 2, 4, 1, 3, 5)
    return rows.reshape(batch, -1, chans * patch * patch)


def kept_patch_pixels(
    x: torch.Tensor, layout: MixedScaleLayout, index: torch.Tensor, patch: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The p x p pixels that each kept slot embeds, flattened (channel, row, column) as a patch-embedding conv reads.

    x: images [B, C, H, W]; index: [B, L] slots (from `kept_slots`). A fine cell's own patch, or for a coarse
    region's slot its 2p x 2p pixels averaged 2 x 2 (= bilinear resizing by 1/2). Returns (pixels [B, L, C*p*p],
    is_fine [B, L] bool, region [B, L]: the coarse region of each slot, clamped for leftover cells).
    """
    (rows, cols), (regions_h, regions_w) = layout.fine_grid, layout.coarse_grid
    fine = _patch_rows(x[..., : rows * patch, : cols * patch], patch)
    half = x[..., : regions_h * 2 * patch, : regions_w * 2 * patch]
    half = half[..., 0::2, :] + half[..., 1::2, :]
    half = (half[..., 0::2] + half[..., 1::2]) * 0.25  # the 2 x 2 mean; several times faster than avg_pool2d on CPU
    coarse = _patch_rows(half, patch)
    region_row = (index // cols // 2).clamp(max=regions_h - 1)
    region_col = (index % cols // 2).clamp(max=regions_w - 1)
    region = region_row * regions_w + region_col
    is_fine = _gather_rows(layout.fine_cells.flatten(1), index) > 0.5
    pixels = torch.where(is_fine[..., None], _gather_rows(fine, index), _gather_rows(coarse, region))
    return pixels, is_fine, region


def scatter_slots(tokens: torch.Tensor, index: torch.Tensor, num_slots: int) -> torch.Tensor:
    """Inverse of `compact_slots`: tokens [B, L, C] back to [B, num_slots, C] (empty slots hold padding or zeros)."""
    out = tokens.new_zeros(tokens.shape[0], num_slots, tokens.shape[-1])
    return out.scatter(1, index[..., None].expand(-1, -1, tokens.shape[-1]), tokens)


def unpool_slots(slots: torch.Tensor, layout: MixedScaleLayout) -> torch.Tensor:
    """Dense tokens [B, Hf*Wf, C]: every cell of a coarse region takes the region's token (its top-left slot)."""
    height, width = layout.fine_grid
    grid = slots.unflatten(1, (height, width))
    rows, cols = 2 * layout.coarse_grid[0], 2 * layout.coarse_grid[1]
    region_tokens = _upsample2(grid[:, 0:rows:2, 0:cols:2], layout.fine_grid, 0.0)
    keep = layout.fine_cells[..., None] > 0.5
    return torch.where(keep, grid, region_tokens).flatten(1, 2)
