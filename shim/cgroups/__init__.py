"""cgroup layer: locate a container's cgroup, write cpuset/quota files, set thread affinity.

Modules: ``paths`` (mounts, /proc/<pid>/cgroup, OCI cgroupsPath, confinement), ``writer`` (v1/v2
backends and a recording backend), ``native`` (cffi helper with a pure-Python fallback).
Importing this package imports nothing heavy; import the submodules you need.
"""
