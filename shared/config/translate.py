"""Settings of the translators. Defaults are the paper profile (each reference's own
hyperparameters); the demo study overrides the sizes and schedule."""

from typing import Literal

from pydantic import Field, field_validator, model_validator

from medtrans.shared.catalogue.stages import translator_names
from medtrans.shared.config.base import Config

# The translators, from the catalogue. TranslateConfig has one settings field per name (a test
# checks that the two agree).
MODELS: tuple[str, ...] = translator_names()


class Schedule(Config):
    """The references' schedule: `n_epochs` at constant lr, then `n_epochs_decay` linear to 0.

    `iters_per_epoch` None means one pass over the source train split per epoch.
    """

    n_epochs: int = Field(100, ge=0)
    n_epochs_decay: int = Field(100, ge=0)
    iters_per_epoch: int | None = Field(None, ge=1)
    batch_size: int = Field(1, ge=1)
    checkpoint_every: int = Field(1, ge=1)  # epochs


class Acceleration(Config):
    """CUDA-only speedups; ignored on CPU and off in the demo profile."""

    bf16: bool = False
    channels_last: bool = False


class Augment(Config):
    """Training-time augmentation, junyanz `get_transform` (`--preprocess resize_and_crop`):
    resize to load = round(image_size * load_ratio) (286 at 256 px), random crop back to
    image_size, random horizontal flip. Drawn from (seed, epoch, iteration, sample), so a
    resumed run sees the same crops; label and foreground masks follow their image."""

    crop: bool = True
    flip: bool = True
    load_ratio: float = Field(286 / 256, ge=1.0)


class CycleGANConfig(Config):
    """Zhu et al. 2017, junyanz/pytorch-CycleGAN-and-pix2pix defaults."""

    ngf: int = 64
    ndf: int = 64
    n_blocks: int = 9
    n_layers_d: int = 3
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    init_gain: float = 0.02
    schedule: Schedule = Schedule(n_epochs=100, n_epochs_decay=100, batch_size=1)
    augment: Augment = Augment()
    accel: Acceleration = Acceleration()


class MaskGANConfig(CycleGANConfig):
    """Phan et al. MICCAI 2023, HieuPhan33/MaskGAN README defaults."""

    n_attentions: int = 5
    lambda_mask: float = 1.0
    lambda_shape: float = 0.5
    grad_clip: float = 1.0
    # the per-slice fallback's threshold (fraction of full scale) for both domains, for slices
    # shipped without a foreground mask; None: the study's `translate.foreground_threshold`
    mask_threshold: float | None = Field(None, ge=0.0, lt=1.0)
    schedule: Schedule = Schedule(n_epochs=40, n_epochs_decay=40, batch_size=4)
    augment: Augment = Augment(flip=False)  # its README's training command passes --no_flip


class UNSBConfig(Config):
    """Kim et al. ICLR 2024, cyclomon/UNSB defaults (README command: lambda_SB = lambda_NCE = 1)."""

    ngf: int = Field(64, ge=4)
    ndf: int = Field(64, ge=1)
    n_blocks: int = Field(9, ge=1)
    n_layers_d: int = Field(3, ge=1)  # PatchGAN depth of D and of the energy network E
    n_mlp: int = Field(3, ge=0)  # extra layers of the z mapping network
    num_timesteps: int = Field(5, ge=2)  # NFE
    tau: float = Field(0.01, ge=0)
    lambda_gan: float = 1.0
    lambda_sb: float = 1.0
    lambda_nce: float = 1.0
    nce_layers: tuple[int, ...] = (0, 4, 8, 12, 16)  # generator layer ids; 12 + i = residual block i
    num_patches: int = Field(256, ge=1)
    netf_nc: int = Field(256, ge=1)  # PatchNCE projection width
    nce_temperature: float = Field(0.07, gt=0)
    nce_idt: bool = True
    # off = the reference: its residual blocks ignore the step (their first conv and time
    # bias are dead); on = an opt-in variant whose blocks add the step bias after the norm
    conditioned_blocks: bool = False
    init_gain: float = 0.02  # xavier-normal gain
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    schedule: Schedule = Schedule(n_epochs=200, n_epochs_decay=200, batch_size=1)
    augment: Augment = Augment()  # CUT/UNSB base options: resize_and_crop, flips on
    accel: Acceleration = Acceleration()

    @model_validator(mode="after")
    def _nce_layers_exist(self) -> "UNSBConfig":
        layers = list(self.nce_layers)
        if not layers or sorted(set(layers)) != layers or layers[0] < 0:
            raise ValueError("nce_layers must be distinct, increasing and >= 0")
        if max(self.nce_layers) >= 12 + self.n_blocks:
            raise ValueError(
                f"nce_layers {layers} needs layer {layers[-1]} but the generator has 12 + n_blocks = "
                f"{12 + self.n_blocks} layers (raise n_blocks or drop the layer)"
            )
        return self


class SPADEConfig(Config):
    """Park et al. CVPR 2019, NVlabs/SPADE defaults, as a mask-conditioned translator."""

    ngf: int = Field(64, ge=1)
    ndf: int = Field(64, ge=1)
    num_d: int = Field(2, ge=1)
    n_layers_d: int = Field(4, ge=2)
    spade_hidden: int = Field(128, ge=1)  # the reference's hard-coded SPADE embedding width
    # The reference's 'normal' generator has 5 x2 upsamplings (latent = size / 32); at small
    # image sizes fewer, so that the latent map keeps at least `min_latent` pixels a side.
    max_upsampling: int = Field(5, ge=1)
    min_latent: int = Field(4, ge=1)
    label_source: Literal["masks", "foreground"] = "masks"
    # per-task override, e.g. {spine: foreground} where the source domain has no masks
    label_source_tasks: dict[str, Literal["masks", "foreground"]] = {}
    lambda_feat: float = 10.0
    vgg_loss: bool = False  # needs ImageNet VGG19 weights from the weights folder
    lambda_vgg: float = 10.0
    vgg_weights: str = "vgg19-dcbb9e9d.pth"  # torchvision's file name, in $MEDTRANS_WEIGHTS or ./weights
    init_gain: float = 0.02  # xavier-normal gain
    lr: float = 2e-4
    ttur: bool = True  # TTUR: G lr/2, D lr*2
    betas: tuple[float, float] = (0.0, 0.9)
    schedule: Schedule = Schedule(n_epochs=50, n_epochs_decay=0, batch_size=1)
    # its custom dataset: resize_and_crop 286 -> 256 with flips, label map and image together
    augment: Augment = Augment()
    accel: Acceleration = Acceleration()


class TranslateConfig(Config):
    """Which translators run, and each one's settings."""

    models: tuple[str, ...] = MODELS
    cyclegan: CycleGANConfig = CycleGANConfig()
    maskgan: MaskGANConfig = MaskGANConfig()
    unsb: UNSBConfig = UNSBConfig()
    spade: SPADEConfig = SPADEConfig()
    sample_grid: int = Field(8, ge=1)  # test slices shown in the sample grid
    log_every: int = Field(10, ge=1)  # iterations averaged into one row of losses.csv
    # the per-slice fallback foreground masks, only for slices shipped without one (preprocess
    # computes MaskGAN's per volume, `preprocess.foreground`): threshold on the 8-bit image / 255
    foreground_threshold: dict[Literal["MR", "CT"], float] = {"MR": 10 / 255, "CT": 50 / 255}
    # tasks whose training images are never flipped (anatomy that is not left-right symmetric)
    no_flip: tuple[str, ...] = ()

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in models if m not in MODELS]
        if unknown:
            raise ValueError(f"unknown translator(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
        return models

    def settings(self, model: str) -> Config:
        """The settings object of one translator."""
        return getattr(self, model)
