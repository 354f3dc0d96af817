# The whole stack, found the standard way. See docs/building.md for the traps.
find_package(Threads REQUIRED)
find_package(MPI REQUIRED COMPONENTS CXX)                   # MPI::MPI_CXX
find_package(PkgConfig REQUIRED)
pkg_check_modules(ZMQ REQUIRED IMPORTED_TARGET libzmq)      # PkgConfig::ZMQ
find_package(cppzmq CONFIG QUIET)                           # header-only zmq.hpp (optional)
find_package(CapnProto CONFIG REQUIRED)                     # CapnProto::capnp, capnp_generate_cpp()
find_package(RocksDB CONFIG REQUIRED)                       # RocksDB::rocksdb-shared
set(GFLAGS_USE_TARGET_NAMESPACE ON)
find_package(gflags CONFIG REQUIRED)                        # gflags::gflags
find_package(glog CONFIG REQUIRED)                          # glog::glog
find_package(nlohmann_json 3.10 CONFIG REQUIRED)            # nlohmann_json::nlohmann_json (timeline merge, tessera report)
find_package(OpenSSL 3.0 REQUIRED COMPONENTS Crypto)         # OpenSSL::Crypto (--auth=mac tags: Poly1305/GMAC, HMAC-SHA256)
find_package(ZLIB REQUIRED)                                 # ZLIB::ZLIB (gzip data sets)
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)                                 # BLAS::BLAS (OpenBLAS)
if(TESSERA_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)                       # GTest::gtest, GTest::gmock
endif()
if(TESSERA_BUILD_BENCH)
  find_package(benchmark CONFIG REQUIRED)                   # benchmark::benchmark
endif()
