"""The library every stage uses: study config, manifests, run layout, image I/O, provenance,
seeding, logging and progress. It imports no stage."""
