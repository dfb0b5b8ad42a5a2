"""Layer 0: utilities with no gapsvm imports (standard library, numpy, joblib, tqdm only).

Atomic file writes, gapsvm's home folder, the restricted unpickler, progress bars, strict
JSON output and the argument checks every layer shares.
"""
