# TESSERA_CUDA=AUTO builds the CUDA backend whenever nvcc is found; ON requires it; OFF skips it.
# Sets TESSERA_HAVE_CUDA and, when ON, the targets CUDA::cudart, CUDA::cublas and NCCL::nccl.
set(TESSERA_CUDA "AUTO" CACHE STRING "Build the CUDA/NCCL backend: AUTO, ON or OFF")
set_property(CACHE TESSERA_CUDA PROPERTY STRINGS AUTO ON OFF)
set(TESSERA_HAVE_CUDA OFF)
if(NOT TESSERA_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      # No 'native': it fails on machines without a GPU. A100 and H100.
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    find_package(NCCL REQUIRED)
    set(TESSERA_HAVE_CUDA ON)
  elseif(TESSERA_CUDA STREQUAL "ON")
    message(FATAL_ERROR "TESSERA_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
endif()
message(STATUS "TESSERA_HAVE_CUDA=${TESSERA_HAVE_CUDA}")
# What scripts/check_cuda_arch.sh holds the built kernels against: neither variable is in
# CMakeCache.txt (both are plain variables), so the configuration writes them down.
file(WRITE "${CMAKE_BINARY_DIR}/tessera_cuda.txt"
     "TESSERA_HAVE_CUDA=${TESSERA_HAVE_CUDA}\nCMAKE_CUDA_ARCHITECTURES=${CMAKE_CUDA_ARCHITECTURES}\n")
