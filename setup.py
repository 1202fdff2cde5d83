"""The compiled decode core (diag.decode._core), built by ``pip install -e .`` with the C compiler
and Python headers of the machine; everything else about the package is in pyproject.toml.

The core is optional: when it cannot be built (no compiler), the install goes on and diag decodes
with its pure-Python reference decoder (``diag --version`` says which one runs). Environment:
``DIAG_CORE_CHECKED=1`` builds the bounds-asserting variant, ``DIAG_CORE_ASAN=1`` adds
AddressSanitizer (both for benchmarks/fuzz_core.py, never for an install).
"""
from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCES = ["module.c", "util.c", "frames.c", "flows.c", "bgpmsg.c", "fold.c", "arp.c"]


def _core() -> Extension:
    args = ["-O2", "-std=gnu11", "-fvisibility=hidden", "-Wall", "-Wno-unused-function"]
    macros = []
    link = []
    if os.environ.get("DIAG_CORE_CHECKED"):
        macros.append(("DIAG_CORE_CHECKED", "1"))
    if os.environ.get("DIAG_CORE_ASAN"):
        args += ["-fsanitize=address", "-fno-omit-frame-pointer", "-O1", "-g"]
        link += ["-fsanitize=address"]
    return Extension("diag.decode._core", [f"diag/decode/_core/{s}" for s in SOURCES],
                     depends=["diag/decode/_core/core.h", "diag/decode/_core/dec.h"],
                     extra_compile_args=args, extra_link_args=link, define_macros=macros)


class OptionalBuild(build_ext):
    """A failed compile is a warning, not a failed install: the pure-Python decoder remains."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as err:  # noqa: BLE001 - any build failure
            self._warn(err)

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as err:  # noqa: BLE001
            self._warn(err)

    @staticmethod
    def _warn(err: Exception) -> None:
        print(f"warning: diag's compiled decoder was not built ({err}); diag will decode with "
              "its pure-Python reference decoder", file=sys.stderr)


setup(ext_modules=[_core()], cmdclass={"build_ext": OptionalBuild})
