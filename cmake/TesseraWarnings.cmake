# tessera_set_warnings(<target>): our warning set; errors when TESSERA_WERROR is on (CI).
# Every target of ours passes through here right after it is defined, so it also
# registers the target for the layering check (cmake/TesseraLayering.cmake).
function(tessera_set_warnings target)
  tessera_layering_register(${target})
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter -Wnon-virtual-dtor>)
  if(TESSERA_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
  endif()
endfunction()
