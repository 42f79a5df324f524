"""Build the Cython core.

Directives are set once here, for the whole extension. ``PRISM_MATCH_DEBUG=1``
turns bounds checking, wraparound and initialised-memoryview checks back on
(a debug build for the kernel tests); OpenMP is used when the compiler has it.
"""

import os
import sys
import tempfile
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from Cython.Build import cythonize
import numpy as np

DEBUG = os.environ.get("PRISM_MATCH_DEBUG", "") not in ("", "0")


def _has_openmp() -> bool:
    """Compile a tiny OpenMP program: the build falls back cleanly without it."""
    if os.environ.get("PRISM_MATCH_NO_OPENMP", "") not in ("", "0") or sys.platform == "win32":
        return False
    import subprocess
    import sysconfig

    cc = (sysconfig.get_config_var("CC") or "cc").split()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp.c")
        with open(src, "w") as fh:
            fh.write("#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n")
        try:
            res = subprocess.run(cc + ["-fopenmp", src, "-o", os.path.join(tmp, "omp")],
                                 capture_output=True)
        except OSError:
            return False
        return res.returncode == 0


OPENMP = _has_openmp()
compile_args = ["-O3", "-ffp-contract=off"]  # no FMA contraction: same bits on every machine
link_args = []
if OPENMP:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")
if DEBUG:
    compile_args = ["-O0", "-g", "-ffp-contract=off"] + (["-fopenmp"] if OPENMP else [])

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "nonecheck": False,
}

def _source(name: str) -> str:
    # The debug build compiles its own copy (made by `make debug-test`), so
    # its C file never stands in for the optimised one.
    if DEBUG:
        return os.path.join(os.environ.get("PRISM_MATCH_DEBUG_DIR", "build/debug"), "prism_match", name)
    return os.path.join("src", "prism_match", name)


extensions = [
    Extension(
        f"prism_match.{name}",
        [_source(f"{name}.pyx")],  # _core.pyx includes the .pxi files beside it
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for name in ("_core", "_names")
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        compile_time_env={"HAVE_OPENMP": OPENMP},
        force=True,  # directives and OpenMP vary between builds: never reuse a stale C file
    ),
    cmdclass={"build_ext": build_ext},
)
