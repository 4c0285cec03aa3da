"""podshim: NUMA-aligned CPU and memory for Kubernetes-style pods.

Importing this package must stay cheap (the OCI hook starts once per container), so it holds
only the version; everything else lives in submodules imported on demand.
"""

__version__ = "0.1.0"
