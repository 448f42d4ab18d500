"""Files for the reader and compare tests: a small axial DICOM series (pydicom, int16 pixels) and
headers that claim far more pixels than their files hold."""

from __future__ import annotations

import struct
import zlib

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid


def dicom_series(folder, slices: np.ndarray, modality: str = "CT", uid: str | None = None, z0: float = 0.0):
    """An axial DICOM series (LPS, IOP 1,0,0,0,1,0), one file per slice, 2 mm apart from `z0`,
    written in reverse position order (so readers must sort)."""
    folder.mkdir(parents=True, exist_ok=True)
    series = uid or generate_uid()
    for k, pixels in enumerate(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"im{k:03d}"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = modality, series, 1, k + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, z0 + 2.0 * (len(slices) - k)]
        ds.PixelSpacing, ds.SliceThickness = [1, 1], 2
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = np.ascontiguousarray(pixels, dtype=np.int16).tobytes()
        pydicom.dcmwrite(folder / f"im{k:03d}", ds, enforce_file_format=True)
    return folder


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def nifti_claiming(path, shape):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.uint8)
    path.write_bytes(hdr.binaryblock + b"\0" * 4 + b"\1" * 1000)  # header, no extension, 1000 bytes
    return path
