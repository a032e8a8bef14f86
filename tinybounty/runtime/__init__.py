"""Runtime capabilities layered on tinygrad 0.14.0: NV on Hopper, FP8 and RDNA4 tensor cores, the CPU graph."""
