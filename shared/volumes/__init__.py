"""Volume and image I/O shared by preprocess and `medtrans compare`: one reader per format
(DICOM series, NIfTI, NRRD, MetaImage, PNG/JPEG/TIFF) and one windowing and slicing policy.

Every reader checks the size its header claims against the pixel limit before reading pixels,
and every problem is a `VolumeError` naming the file and the reason."""
