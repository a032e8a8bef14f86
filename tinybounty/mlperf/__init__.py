"""MLPerf training workloads in tinygrad: BERT pretraining (LAMB, loss scaling), checkpoints, PyTorch references."""
