"""The procedural phantom study: synthetic breast MRI (two vendors) and lumbar spine (MRI, CT),
written as real DICOM / NIfTI / NRRD files so every reader is exercised offline."""
