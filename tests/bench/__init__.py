"""Benchmarks (`make bench`) and the reference implementations that check medtrans: they live
beside the tests, not in the product package, so the stage images do not ship them."""
