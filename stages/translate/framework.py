"""The translator framework: what the four translators (cyclegan, maskgan, unsb, spade) share.

A translator is a `Translator` subclass in its own module `stages/translate/<name>.py` (or a
package `stages/translate/<name>/` whose `__init__` imports the class), registered with
`@register("<name>")`. Everything else is shared:

- `base.py`      the `Translator` base class (the protocol every model implements), the
                 `Progress` record passed to `train_step`, the batch keys, `ImagePool`.
- `registry.py`  name -> class (`register`, `get_model`); the module is imported lazily, so
                 one model's missing module never breaks another.
- `data.py`      reads `preprocess/<task>/` (SliceIndex) into memory: images in [-1, 1],
                 label masks, the foreground masks preprocess shipped; the seeded unpaired pairing
                 (`pair_indices`) and batch assembly (`TrainData.batch`).
- `augment.py`   the references' resize-crop-flip augmentation, drawn per (seed, epoch,
                 domain), applied by the loop to each batch (`augment:` per model).
- `labels.py`    refuses, when planned, a unit that would translate source slices from blank
                 label maps (SPADE on `label_source: masks` without source masks).
- `settings.py`  a model's settings as they apply to one task (per-task overrides).
- `foreground.py` the per-slice fallback foreground mask, for slices shipped without one
                 (preprocess computes MaskGAN's per volume: stages/preprocess/foreground.py).
- `nets.py`      building blocks the references share: the ResNet generator, weight init
                 normal(0, 0.02), the 70x70 PatchGAN (MONAI), least-squares GAN loss.
- `loop.py`      the training loop: epochs x iterations, the "n_epochs constant +
                 n_epochs_decay linear to zero" schedule, progress bar, losses.csv/png,
                 exact-resume checkpoints (networks, optimizers, schedulers, pools, RNGs)
                 through `medtrans.shared.checkpoint`, which segment uses too.
- `infer.py`     translation of the source test split -> `test/<slice_id>.png`, samples.png.
- `stage.py`     `plan(study, layout, models=None)`: one Unit per task x enabled model,
                 output `translate/<task>/<model>/`, input `preprocess/<task>/`.

A model's contract (see `Translator`):

    class MyModel(Translator):
        name = "mymodel"; uses_masks = False; uses_foreground = False; epoch_over = "both"
        def __init__(self, config, *, n_classes, image_size, device, seed): ...
        def networks(self) -> dict[str, nn.Module]        # every network (checkpointed)
        def optimizers(self) -> dict[str, Optimizer]      # the loop adds the lr schedulers
        def train_step(self, batch, progress) -> dict[str, Tensor]  # one update, its 0-dim losses
        def translate(self, a, mask_a=None, fg_a=None) -> Tensor    # (B,1,H,W) in [-1, 1]
        def extra_state(self) / load_extra_state(state)   # image pools, own generators
        def panels(self, a, mask_a=None, fg_a=None) -> dict[str, Tensor]  # optional, samples.png
        @classmethod needs_source_masks(config) -> bool   # translating reads source label maps
        @classmethod preflight(config)                    # refuse at plan time (missing weights)

Batch keys (`data.BATCH_KEYS`), all on the model's device:
    a, b            (B,1,H,W) float32 in [-1, 1]: source image, unpaired target image
    mask_a, mask_b  (B,H,W) int64 label maps 0..K (0 background, k = k-th task structure)
    fg_a, fg_b      (B,H,W) float32 {0, 1}: automatic foreground masks (1 = foreground)
`n_classes` = K + 1 (labels including background).
"""

from medtrans.stages.translate.base import BATCH_KEYS, ImagePool, Progress, Translator
from medtrans.stages.translate.registry import get_model, register, registered

__all__ = ["BATCH_KEYS", "ImagePool", "Progress", "Translator", "get_model", "register", "registered"]
