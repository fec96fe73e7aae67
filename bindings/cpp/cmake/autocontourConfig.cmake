# CMake package for the autocontour SDK: find_package(autocontour CONFIG) defines the imported
# target autocontour::autocontour (the shared library, autocontour.h and autocontour.hpp).
# Relocatable: expects <prefix>/lib/cmake/autocontour/ (this file), <prefix>/lib/ and
# <prefix>/include/ (see bindings/cpp/stage-sdk.sh).
get_filename_component(_autocontour_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET autocontour::autocontour)
  add_library(autocontour::autocontour SHARED IMPORTED)
  set_target_properties(autocontour::autocontour PROPERTIES
    IMPORTED_LOCATION "${_autocontour_prefix}/lib/${CMAKE_SHARED_LIBRARY_PREFIX}autocontour${CMAKE_SHARED_LIBRARY_SUFFIX}"
    INTERFACE_INCLUDE_DIRECTORIES "${_autocontour_prefix}/include")
  if(WIN32)
    set_target_properties(autocontour::autocontour PROPERTIES
      IMPORTED_IMPLIB "${_autocontour_prefix}/lib/autocontour.dll.lib")
  endif()
endif()
set(autocontour_INCLUDE_DIRS "${_autocontour_prefix}/include")
set(autocontour_LIBRARIES autocontour::autocontour)
unset(_autocontour_prefix)
