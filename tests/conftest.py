"""Test-wide settings."""
import torch

# The tests run tiny models where thread start-up costs more than it saves, and a busy 2-core
# machine makes oversubscribed intra-op threads 10x slower: one thread is faster and steadier.
torch.set_num_threads(1)
