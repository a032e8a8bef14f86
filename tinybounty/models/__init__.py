"""Models shared by every capability: MNIST convnet, ResNet, GPT-2, BERT, Llama, and the WORKLOADS built from them."""
