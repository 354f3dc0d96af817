"""pip's entry to the Python package (docs/python.md, "Building"): configures and builds
the CMake target tessera_python, then installs build/python/tessera as the package.

    pip install --no-build-isolation .                       # a fresh build in build-pip/
    TESSERA_BUILD_DIR=build pip install --no-build-isolation .   # reuse a configured build

The extension is built for the interpreter pip runs under (Python3_EXECUTABLE).
"""

import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = os.path.abspath(os.environ.get("TESSERA_BUILD_DIR", os.path.join(ROOT, "build-pip")))
        if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
            subprocess.check_call(["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                                   "-DTESSERA_PYTHON=ON", "-DTESSERA_BUILD_TESTS=OFF", "-DTESSERA_BUILD_BENCH=OFF",
                                   "-DPython3_EXECUTABLE=" + sys.executable])
        subprocess.check_call(["cmake", "--build", build, "--target", "tessera_python", "--parallel",
                               os.environ.get("TESSERA_BUILD_JOBS", "2")])
        built = os.path.join(build, "python", "tessera")
        out = os.path.dirname(os.path.dirname(self.get_ext_fullpath(ext.name)))
        dest = os.path.join(out, "tessera")
        os.makedirs(dest, exist_ok=True)
        for name in os.listdir(built):
            shutil.copy2(os.path.join(built, name), os.path.join(dest, name))


setup(packages=[], ext_modules=[Extension("tessera._core", sources=[])], cmdclass={"build_ext": CMakeBuild},
      zip_safe=False)
