"""medtrans: a reproducible study of perceptual metrics for medical image translation.

The code lives in two folders: `shared/` (imported as `medtrans.shared`) and `stages/`
(imported as `medtrans.stages`). This file only makes `medtrans` a package.
"""

__version__ = "0.1.0"
