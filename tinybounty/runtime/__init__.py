"""Runtime extensions of tinygrad's devices (each behind its own install()/uninstall())."""
