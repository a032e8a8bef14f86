"""Runtime capabilities layered on tinygrad 0.14.0: the CPU graph, NV on Hopper, FP8 and RDNA4 tensor cores."""
