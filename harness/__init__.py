"""Harness for transferring English sparse (SPLADE) encoders to new languages."""
import warnings

__version__ = "0.1.0"

# torch warns on every sparse CSR construction; the plans and indexes use CSR by design
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
# ranx's numba kernels warn about their own uint64 -> int64 index casts on every metric and fusion
warnings.filterwarnings("ignore", message="unsafe cast from uint64 to int64")
