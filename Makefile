# Set-up and the two commands the README documents:
#   make bench   build everything, then run the benchmark on this machine's device
#   make test    build everything, then run the whole test suite
# Both create .venv and install requirements-dev.txt into it on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: deps build test bench cmake-check asan-check clean

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements-dev.txt
	touch $@

deps: $(STAMP)

# The extension: C++ CPU kernels always; CUDA kernels too when nvcc and a CUDA torch are present.
build: deps
	MAX_JOBS=$${MAX_JOBS:-2} $(PIP) install --no-build-isolation --no-deps -e .

test: build
	$(PY) -m pytest -q

bench: build
	$(PY) benchmarks/run.py

# The same sources built by CMake against the installed libtorch, then loaded and checked.
cmake-check: deps
	cmake -S . -B cmake-build -DPython3_EXECUTABLE=$(abspath $(PY)) -DCMAKE_BUILD_TYPE=Release
	cmake --build cmake-build -j2
	$(PY) scripts/check_cmake_build.py cmake-build/libinception_dwconv_ops.so

# The CPU kernels built with AddressSanitizer (in a scratch copy) and their tests run against them.
asan-check: deps
	bash scripts/asan_cpu.sh $(PY)

clean:
	rm -rf build cmake-build *.egg-info inception_dwconv/*.so
