"""The two branches' mechanics: crop/paste geometry, the local branch plan, residuals, U-Net layouts,
crop budgets and identity attention."""
