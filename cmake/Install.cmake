# Install layout and the Debian package (included at the end of the top
# CMakeLists.txt). `cmake --install BUILD [--prefix P]` puts:
#   bin/                               qfleet, qmpctl
#   share/man/man1, man5               qfleet.1 qmpctl.1, qfleet-cfg.5 qfleet-suite.5 (.gz)
#   share/bash-completion/completions  qfleet, qmpctl (one script, loaded by either name)
#   share/doc/qfleet                   README.md, cfg.md, SUITES.md, docs/*.md, examples/
# `cpack -G DEB --config BUILD/CPackConfig.cmake` packages the same tree under /usr.
include(GNUInstallDirs)

install(TARGETS qfleet qmpctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Man pages are installed gzipped (-n: no name or time stamp inside), as
# Debian policy wants them in a package; man reads them either way.
find_program(QF_GZIP gzip REQUIRED)
set(qf_man_gz)
foreach(page qfleet.1 qmpctl.1 qfleet-cfg.5 qfleet-suite.5)
  set(gz ${CMAKE_BINARY_DIR}/man/${page}.gz)
  add_custom_command(OUTPUT ${gz}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
    COMMAND ${QF_GZIP} -9nc ${CMAKE_SOURCE_DIR}/docs/man/${page} > ${gz}
    DEPENDS ${CMAKE_SOURCE_DIR}/docs/man/${page} VERBATIM)
  string(REGEX REPLACE ".*\\.([1-9])$" "\\1" section ${page})
  install(FILES ${gz} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  list(APPEND qf_man_gz ${gz})
endforeach()
add_custom_target(qfleet-man ALL DEPENDS ${qf_man_gz})

# bash-completion loads completions/CMD the first time CMD is completed; the
# script registers both commands, so it is installed under both names.
foreach(cmd qfleet qmpctl)
  install(FILES tools/completion/qfleet.bash
    DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME ${cmd})
endforeach()

install(FILES README.md cfg/SUITES.md docs/architecture.md docs/rundir.md docs/status.md
  DESTINATION ${CMAKE_INSTALL_DOCDIR})
# cfg/README.md would collide with the top README.md.
install(FILES cfg/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME cfg.md)
install(DIRECTORY cfg/examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# The package. Depends: the shared libraries the binaries link, found by
# dpkg-shlibdeps (libuv1, libyajl2, libssh-4, libc6 with their minimum
# versions; a sanitizer build adds its runtimes), plus QEMU, which qfleet
# runs. qemu-guest-agent runs inside the guests, not on the host, so it is
# only suggested (for building guest images on this host).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME qfleet)
set(CPACK_PACKAGE_VENDOR qfleet)
set(CPACK_PACKAGE_CONTACT "qfleet maintainers <qfleet@localhost>" CACHE STRING
  "Maintainer field of the Debian package")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "run QEMU regression fleets from DTS VM cfg files")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
  "qfleet launches many QEMU guests from one event loop, follows each over QMP
and the guest agent to ready, leases MACs, VNC displays, ports, PCI slots,
CPUs and SR-IOV VFs without collisions, and runs regression suites in
parallel. qmpctl inspects the running guests.")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
find_program(QF_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(QF_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "qemu-system-x86")
else()
  # Without dpkg-dev the library packages are named by hand (Debian 12's).
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS OFF)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "libc6, libuv1, libyajl2, libssh-4, qemu-system-x86")
endif()
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "qemu-guest-agent")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES OFF)
include(CPack)
