"""Control residual dicts ({'input'|'middle'|'output': [tensor or None, …]}): joining and summing."""
from __future__ import annotations

import torch

Residuals = dict[str, list]


def concat_residuals(parts: list[Residuals]) -> Residuals:
    """Join residual dicts computed for consecutive chunks of crops along the batch axis."""
    if len(parts) == 1:
        return parts[0]
    out = {}
    for key in parts[0]:
        levels = zip(*(p[key] for p in parts))
        out[key] = [None if lv[0] is None else torch.cat(lv, dim=0) for lv in levels]
    return out


def add_residuals(a: Residuals | None, b: Residuals | None) -> Residuals | None:
    """Level-by-level sum of two residual dicts (None entries and missing levels pass through)."""
    if a is None or b is None:
        return a if b is None else b
    out = {}
    for key in set(a) | set(b):
        la, lb = a.get(key, []), b.get(key, [])
        out[key] = [x if y is None else y if x is None else x + y
                    for x, y in zip(la + [None] * (len(lb) - len(la)), lb + [None] * (len(la) - len(lb)))]
    return out


def scale_residuals(residuals: Residuals, scale: torch.Tensor) -> Residuals:
    """Every residual times a per-row scale [N] (one factor per crop, say)."""
    def times(r):
        return r * scale.view(-1, *([1] * (r.ndim - 1))).to(r.dtype)
    return {key: [None if r is None else times(r) for r in levels] for key, levels in residuals.items()}


def place_rows(whole: Residuals | None, part: Residuals, rows: torch.Tensor, batch: int) -> Residuals:
    """Residuals computed for some latent rows put into a whole batch's residuals (zeros elsewhere; `whole`
    None starts them)."""
    if whole is None:
        whole = {k: [None if r is None else r.new_zeros(batch, *r.shape[1:]) for r in levels]
                 for k, levels in part.items()}
    for key, levels in part.items():
        for into, r in zip(whole[key], levels):
            if r is not None:
                into[rows] = r
    return whole
