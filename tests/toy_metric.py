"""A toy metric for the catalogue test, written as a new metric would be: one module with its
maths and its scorer, and one registration (`SPEC`) in the metric catalogue."""

import numpy as np

from medtrans.shared.catalogue.metrics import MetricSpec

SPEC = MetricSpec(
    "toy", "Toy", "higher", "pixels", False, "toy_metric:ToyScorer", spread="toy_std",
    summary="minus the gap between the two sets' mean brightness",
)  # fmt: skip


def brightness_gap(real: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    """(-|mean(real) - mean(fake)|, std of the fake images' means): higher is more alike."""
    per_image = fake.reshape(len(fake), -1).mean(axis=1)
    return -abs(float(real.mean()) - float(per_image.mean())), float(per_image.std())


class ToyScorer:
    def __init__(self, real, settings):
        if real.images is None:
            raise ValueError("no pixels")
        self.real = real.images

    def score(self, fake, idx):
        if fake.images is None:
            raise ValueError("no pixels")
        value, spread = brightness_gap(self.real, fake.images[idx])
        return {"toy": value, "toy_std": spread}
