# The layering check (docs/architecture.md, "Modules and what they may depend on").
#
# Every library and binary of ours outside tests/ and bench/ is checked twice:
#  - at configure time, that each Tessera library it links was defined before it, so
#    the add_subdirectory order in CMakeLists.txt is the dependency order and no cycle
#    or upward link can be written;
#  - at build time (before its objects compile), that each `#include "dir/file.h"` in
#    its sources and its own headers names a header of itself or of a library it links
#    (directly, or through those libraries' PUBLIC links). So a new crossing, such as a
#    server including a worker header, fails the build even though every header is on
#    the include path.
# A header belongs to the library that compiles the .cc of the same name; a header with
# no .cc belongs to the library whose CMakeLists.txt sits in its directory (or the
# nearest directory above that has one). Angle-bracket includes are third-party.

# Called for every target right after add_library/add_executable (tessera_set_warnings
# does it), which is what gives the definition order.
function(tessera_layering_register target)
  get_target_property(dir ${target} SOURCE_DIR)
  file(RELATIVE_PATH rel "${PROJECT_SOURCE_DIR}" "${dir}")
  if(rel MATCHES "^(tests|bench)(/|$)")
    return()
  endif()
  set_property(GLOBAL APPEND PROPERTY TESSERA_LAYERED_TARGETS ${target})
endfunction()

# The Tessera targets `target` may use headers of: itself, what it links, and what
# those export (PUBLIC/INTERFACE links; a PRIVATE link of a static library shows up as
# $<LINK_ONLY:...> and is not usable for includes).
function(_tessera_layering_closure target known out)
  get_target_property(todo ${target} LINK_LIBRARIES)
  set(seen ${target})
  while(todo)
    list(POP_FRONT todo t)
    if(t MATCHES "\\$<" OR NOT t IN_LIST known OR t IN_LIST seen)
      continue()
    endif()
    list(APPEND seen ${t})
    get_target_property(more ${t} INTERFACE_LINK_LIBRARIES)
    if(more)
      list(APPEND todo ${more})
    endif()
  endwhile()
  set(${out} ${seen} PARENT_SCOPE)
endfunction()

function(_tessera_layering_generate)
  get_property(targets GLOBAL PROPERTY TESSERA_LAYERED_TARGETS)
  set(out_dir "${PROJECT_BINARY_DIR}/layering")
  set(owners_text "")
  set(libs "")
  set(top_dirs "")
  # Pass 1: order, sources, the owners of same-named headers and of directories.
  set(rank 0)
  foreach(t IN LISTS targets)
    set(rank_${t} ${rank})
    math(EXPR rank "${rank} + 1")
    get_target_property(type ${t} TYPE)
    get_target_property(tdir ${t} SOURCE_DIR)
    file(RELATIVE_PATH tdir_rel "${PROJECT_SOURCE_DIR}" "${tdir}")
    get_target_property(srcs ${t} SOURCES)
    set(files_${t} "")
    foreach(s IN LISTS srcs)
      if(s MATCHES "\\$<")
        continue()
      endif()
      cmake_path(ABSOLUTE_PATH s BASE_DIRECTORY "${tdir}" NORMALIZE OUTPUT_VARIABLE abs)
      cmake_path(IS_PREFIX PROJECT_BINARY_DIR "${abs}" generated)
      if(generated OR NOT EXISTS "${abs}")
        continue()
      endif()
      file(RELATIVE_PATH rel "${PROJECT_SOURCE_DIR}" "${abs}")
      list(APPEND files_${t} ${rel})
      if(type STREQUAL "STATIC_LIBRARY")
        get_filename_component(d "${rel}" DIRECTORY)
        get_filename_component(stem "${rel}" NAME_WE)
        foreach(ext h cuh)
          if(EXISTS "${PROJECT_SOURCE_DIR}/${d}/${stem}.${ext}" AND NOT DEFINED own_${d}/${stem}.${ext})
            set(own_${d}/${stem}.${ext} ${t})
            list(APPEND files_${t} ${d}/${stem}.${ext})
          endif()
        endforeach()
        if(NOT DEFINED dirsrc_${d})
          set(dirsrc_${d} ${t})
        endif()
      endif()
    endforeach()
    if(type STREQUAL "STATIC_LIBRARY")
      list(APPEND libs ${t})
      if(NOT DEFINED dirown_${tdir_rel})
        set(dirown_${tdir_rel} ${t})
      endif()
      string(REGEX REPLACE "/.*" "" top "${tdir_rel}")
      list(APPEND top_dirs ${top})
    endif()
  endforeach()
  list(REMOVE_DUPLICATES top_dirs)
  # Pass 2: every header of the modules, owned by its .cc's library or its directory's.
  set(globs "")
  foreach(top IN LISTS top_dirs)
    list(APPEND globs "${top}/*.h" "${top}/*.cuh")
  endforeach()
  file(GLOB_RECURSE headers RELATIVE "${PROJECT_SOURCE_DIR}" CONFIGURE_DEPENDS ${globs})
  list(SORT headers)
  foreach(h IN LISTS headers)
    set(owner "")
    if(DEFINED own_${h})
      set(owner ${own_${h}})
    else()
      get_filename_component(d "${h}" DIRECTORY)
      while(d AND NOT owner)
        if(DEFINED dirown_${d})
          set(owner ${dirown_${d}})
        elseif(DEFINED dirsrc_${d})
          set(owner ${dirsrc_${d}})
        else()
          get_filename_component(d "${d}" DIRECTORY)
        endif()
      endwhile()
      if(owner)
        list(APPEND files_${owner} ${h})
      endif()
    endif()
    if(owner)
      string(APPEND owners_text "set(\"own_${h}\" ${owner})\n")
    endif()
  endforeach()
  # Directories, for includes of headers not in the tree (wire/tessera.capnp.h).
  foreach(t IN LISTS libs)
    get_target_property(tdir ${t} SOURCE_DIR)
    file(RELATIVE_PATH d "${PROJECT_SOURCE_DIR}" "${tdir}")
    if(dirown_${d} STREQUAL t)
      string(APPEND owners_text "set(\"dirown_${d}\" ${t})\n")
    endif()
  endforeach()
  file(CONFIGURE OUTPUT "${out_dir}/owners.cmake" CONTENT "${owners_text}" @ONLY)

  foreach(t IN LISTS targets)
    # Configure time: links point down only.
    get_target_property(direct ${t} LINK_LIBRARIES)
    foreach(d IN LISTS direct)
      if(d IN_LIST libs AND NOT rank_${d} LESS rank_${t})
        message(FATAL_ERROR "layering: ${t} links ${d}, which is defined after it: a library links only "
                            "libraries below it (CMakeLists.txt's add_subdirectory order, docs/architecture.md)")
      endif()
    endforeach()
    # Build time: includes stay within what it links.
    _tessera_layering_closure(${t} "${libs}" allowed)
    list(REMOVE_DUPLICATES files_${t})
    set(spec "${out_dir}/${t}.cmake")
    file(CONFIGURE OUTPUT "${spec}" @ONLY CONTENT
         "set(LAYER_TARGET ${t})\nset(LAYER_FILES \"${files_${t}}\")\nset(LAYER_ALLOWED \"${allowed}\")\n")
    list(TRANSFORM files_${t} PREPEND "${PROJECT_SOURCE_DIR}/" OUTPUT_VARIABLE deps)
    add_custom_command(
      OUTPUT "${out_dir}/${t}.ok"
      COMMAND ${CMAKE_COMMAND} -DSPEC=${spec} -DOWNERS=${out_dir}/owners.cmake -DROOT=${PROJECT_SOURCE_DIR}
              -P ${PROJECT_SOURCE_DIR}/cmake/CheckLayering.cmake
      COMMAND ${CMAKE_COMMAND} -E touch "${out_dir}/${t}.ok"
      DEPENDS ${deps} "${spec}" "${out_dir}/owners.cmake" "${PROJECT_SOURCE_DIR}/cmake/CheckLayering.cmake"
      COMMENT "Checking the includes of ${t} against its links"
      VERBATIM)
    add_custom_target(${t}_layering DEPENDS "${out_dir}/${t}.ok")
    add_dependencies(${t} ${t}_layering)
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${PROJECT_SOURCE_DIR}" CALL _tessera_layering_generate)
