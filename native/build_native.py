"""cffi build script (API mode, out-of-line) for ``shim._native``.

setup.py names ``native/build_native.py:ffibuilder`` in ``cffi_modules``; setuptools then compiles
the module as a normal C extension. Run directly (``python native/build_native.py``) to build
``shim/_native*.so`` in place for quick experiments.
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

CDEF = """
int podshim_set_process_affinity(int pid, const int *cpus, size_t ncpus, int *first_errno);
int podshim_write_files(const char **paths, const char **values, size_t n, int stop_on_error, int *errnos);
uint32_t podshim_fnv1a_32(const char *data, size_t n, uint32_t hash);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
# The C file is passed as the module source (not #included) so the build needs no include path
# and works from an sdist or a clean clone alike.
ffibuilder.set_source(
    "shim._native",
    (HERE / "podshim_native.c").read_text(encoding="utf-8"),
    extra_compile_args=["-O2", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=str(HERE.parent), verbose=True)
