"""The training curve as a PNG (matplotlib, Agg backend: no display needed)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_training(history: pd.DataFrame, path: Path, title: str, best_epoch: int) -> None:
    """Train loss and validation Dice per epoch; the selected epoch marked."""
    fig, ax1 = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax1.plot(history["epoch"], history["train_loss"], "o-", color="tab:blue", label="train loss (Dice+CE)")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(history["epoch"], history["val_dice"], "s-", color="tab:orange", label="val Dice")
    ax2.set_ylabel("val mean foreground Dice", color="tab:orange")
    ax2.set_ylim(0, 1)
    ax2.axvline(best_epoch, color="grey", linestyle="--", linewidth=1)
    ax1.set_title(f"{title} (best epoch {best_epoch})")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
