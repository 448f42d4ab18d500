"""A pydicom decoder plugin for 12-bit JPEG Extended (1.2.840.10008.1.2.4.51) through
imagecodecs (BSD-3, libjpeg-turbo 3 with 12-bit support).

pydicom's own plugins leave this PACS syntax undecodable here: its GDCM and Pillow plugins
refuse 12-bit samples, and pylibjpeg-libjpeg (GPL-3.0) refuses files whose scan header is not
strictly sequential, which libjpeg-turbo reads with a warning (pydicom's `JPEG-lossy.dcm`).
`register()` adds this plugin once, after pydicom's own."""

from pydicom import uid
from pydicom.pixels.decoders.base import DecodeRunner

DECODER_DEPENDENCIES = {uid.JPEGExtended12Bit: ("imagecodecs",)}
LABEL = "medtrans-imagecodecs"


def is_available(tsyntax: str) -> bool:
    if tsyntax not in DECODER_DEPENDENCIES:
        return False
    try:
        import imagecodecs
    except ImportError:
        return False
    return bool(getattr(imagecodecs, "JPEG8", None) and imagecodecs.JPEG8.available)


def _decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """One frame as bytes in the container pydicom expects (8 or 16 bits allocated)."""
    import imagecodecs

    frame = imagecodecs.jpeg8_decode(src)
    if runner.samples_per_pixel != 1:
        raise ValueError("12-bit JPEG Extended with colour samples: only grayscale is decoded here")
    runner.set_option("bits_allocated", 8 if frame.dtype.itemsize == 1 else 16)
    return frame.astype(frame.dtype.newbyteorder("<"), copy=False).tobytes()


def register() -> None:
    """Add the plugin to pydicom's JPEG Extended decoder (once: pydicom refuses a second one
    under the same label with ValueError)."""
    from pydicom.pixels.decoders import JPEGExtended12BitDecoder

    try:
        JPEGExtended12BitDecoder.add_plugin(LABEL, (__name__, "_decode_frame"))
    except ValueError:
        pass  # already registered
