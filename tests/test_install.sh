#!/usr/bin/env bash
# tests/test_install.sh PART - install, package, man pages and completion.
#
#   man         every page in docs/man passes `groff -ww -man -z` (and
#               `man --warnings -l`) silently, and names every option the
#               commands' --help prints and every key of cfg/README.md
#   completion  tools/completion/qfleet.bash, sourced in bash: commands and
#               options (checked against --help), VM names from a cfg, guest
#               names of a run dir made by hand, run ids
#   configure   a plain configure needs no criterion; QFLEET_TESTS=ON does
#   install     `cmake --install` into a scratch prefix: the layout, and the
#               installed qfleet and completion work
#   deb         `cpack -G DEB`: Depends names the runtime packages; the .deb
#               installed with dpkg into a scratch root runs `qfleet
#               --version` (--help while --version does not exist) and
#               `qfleet cmdline` on its example cfg
#
# Run by ctest (tests/CMakeLists.txt) with QF_SOURCE_DIR and QF_BINARY_DIR.
set -euo pipefail

SRC=${QF_SOURCE_DIR:?QF_SOURCE_DIR is not set}
BIN=${QF_BINARY_DIR:?QF_BINARY_DIR is not set}
QFLEET=$BIN/src/qfleet
QMPCTL=$BIN/tools/qmpctl
T=$(mktemp -d "${TMPDIR:-/tmp}/qf-install.XXXXXX")
trap 'rm -rf "$T"' EXIT
failures=0

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
# ok_since N WHAT: ok WHAT if nothing failed since failures was N.
ok_since() { if (($1 == failures)); then ok "$2"; fi; }

# expect_eq WHAT GOT WANT
expect_eq() {
  if [[ $2 == "$3" ]]; then ok "$1"; else fail "$1: got '$2', want '$3'"; fi
}

# The -x/--xx options a --help text names.
help_opts() {
  grep -oE -- '(^|[][[:space:],(`])-{1,2}[a-zA-Z][a-zA-Z-]*' | sed -E 's/^[^-]//' | sort -u
}

# ---------------------------------------------------------------- man
part_man() {
  command -v groff >/dev/null || { fail "groff is missing (apt-get install groff-base)"; return; }
  local page err pages=("$SRC"/docs/man/*.[1-9])
  expect_eq "four man pages" "${#pages[@]}" 4
  for page in "${pages[@]}"; do
    err=$(groff -ww -man -z -rCHECKSTYLE=3 "$page" 2>&1) || fail "groff failed on $page"
    if [[ -z $err ]]; then ok "groff -ww: ${page##*/}"; else fail "groff -ww ${page##*/}: $err"; fi
    if command -v man >/dev/null; then
      err=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null) || fail "man -l failed on $page"
      if [[ -z $err ]]; then ok "man -l: ${page##*/}"; else fail "man -l ${page##*/}: $err"; fi
    fi
  done
  # The lint itself: a page with a mistake must not pass.
  printf '.TH BAD 1\n.SH NAME\nbad \\- bad\n.SH DESCRIPTION\n.XY what\n\\fQoops\n' >"$T/bad.1"
  err=$(groff -ww -man -z -rCHECKSTYLE=3 "$T/bad.1" 2>&1 || true)
  if [[ -n $err ]]; then ok "groff -ww warns on a broken page"; else fail "groff -ww accepted a broken page"; fi

  # Every option of every command is in its page (source with \- as -).
  local c o text f0=$failures
  text=$(sed 's/\\-/-/g' "$SRC/docs/man/qfleet.1")
  for c in up down run leases alloc free cmdline; do
    for o in $("$QFLEET" "$c" --help | help_opts); do
      grep -qF -- "$o" <<<"$text" || fail "qfleet.1 lacks $c $o"
    done
    grep -qF -- "qfleet $c" <<<"$text" || fail "qfleet.1 lacks the command $c"
  done
  ok_since "$f0" "qfleet.1 names every command and option of --help"
  f0=$failures
  text=$(sed 's/\\-/-/g' "$SRC/docs/man/qmpctl.1")
  for c in list status pci ifaces qmp qga events console stop; do
    for o in $("$QMPCTL" "$c" --help | help_opts); do
      grep -qF -- "$o" <<<"$text" || fail "qmpctl.1 lacks $c $o"
    done
    grep -qE -- "^\\.BI? $c( |\$)" <<<"$text" || fail "qmpctl.1 lacks the command $c"
  done
  ok_since "$f0" "qmpctl.1 names every command and option of --help"
  # issue 16: qfleet report, qmpctl ssh, vnc and hmp
  f0=$failures
  text=$(sed 's/\\-/-/g' "$SRC/docs/man/qfleet.1")
  for o in $("$QFLEET" report --help | help_opts) --metrics-textfile; do
    grep -qF -- "$o" <<<"$text" || fail "qfleet.1 lacks report $o"
  done
  grep -qF -- "qfleet report" <<<"$text" || fail "qfleet.1 lacks the command report"
  text=$(sed 's/\\-/-/g' "$SRC/docs/man/qmpctl.1")
  for c in ssh vnc hmp; do
    for o in $("$QMPCTL" "$c" --help | help_opts); do
      grep -qF -- "$o" <<<"$text" || fail "qmpctl.1 lacks $c $o"
    done
    grep -qE -- "^\\.BI? $c( |\$)" <<<"$text" || fail "qmpctl.1 lacks the command $c"
  done
  ok_since "$f0" "the man pages name report, ssh, vnc and hmp with their options"
  f0=$failures
  # Every key of cfg/README.md's key table is in qfleet-cfg(5).
  local keys k n=0
  # The key column of the table under "## Keys": `name`, `virt_type`, `os`, ...
  keys=$(sed -n '/^## Keys/,/^### /p' "$SRC/cfg/README.md" | grep -oE '^\| [^|]*' |
    grep -oE '`[a-z_]+`' | tr -d '`' | sort -u)
  [[ -n $keys ]] || fail "no keys found in cfg/README.md"
  # The tag lines of its paragraphs (the line after each .TP).
  text=$(sed 's/\\-/-/g' "$SRC/docs/man/qfleet-cfg.5" | grep -A1 -E '^\.TP$' | grep -E '^\.B')
  for k in $keys; do
    n=$((n + 1))
    grep -qE -- "^\\.BR? (.* )?\"?$k([ \"]|\$)" <<<"$text" || fail "qfleet-cfg.5 has no paragraph for the key $k"
  done
  ok_since "$f0" "qfleet-cfg.5 has all $n keys of cfg/README.md"
  f0=$failures
  # ... and every key of the [suite] section of cfg/SUITES.md in qfleet-suite(5).
  keys=$(sed -n '/^## \[suite\]/,/^## /p' "$SRC/cfg/SUITES.md" | grep -oE '^\| `[a-z_]+`' | tr -d '|` ')
  text=$(sed 's/\\-/-/g' "$SRC/docs/man/qfleet-suite.5")
  for k in $keys; do
    grep -qE -- "^\\.B $k\$" <<<"$text" || fail "qfleet-suite.5 lacks the [suite] key $k"
  done
  ok_since "$f0" "qfleet-suite.5 has the [suite] keys: $(echo $keys)"
}

# ---------------------------------------------------------------- completion
# comp SCRIPT WORD... : the candidates the completion function gives when the
# last WORD is being completed, sorted, on one line.
comp() {
  local script=$1
  shift
  bash --norc --noprofile -c '
    source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
    spec=$(complete -p "${1##*/}") || exit 1
    fn=${spec#*-F }; fn=${fn%% *}
    "$fn"
    printf "%s\n" "${COMPREPLY[@]}"' x "$script" "$@" | sed '/^$/d' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//'
}

part_completion() {
  local S=$SRC/tools/completion/qfleet.bash c got want o f0
  export PATH=$BIN/tools:$BIN/src:$PATH
  unset QFLEET_STATE_DIR

  # Commands, as --help lists them.
  want=$("$QFLEET" --help | sed -n 's/^  \([a-z][a-z]*\)  .*/\1/p' | sort | tr '\n' ' ' | sed 's/ $//')
  expect_eq "qfleet commands" "$(comp "$S" qfleet "")" "$want"
  expect_eq "qfleet command prefix" "$(comp "$S" qfleet c)" "cmdline"
  want=$("$QMPCTL" --help | sed -n '/^commands:/,/^$/s/^  \([a-z][a-z]*\) .*/\1/p' | sort | tr '\n' ' ' | sed 's/ $//')
  expect_eq "qmpctl commands" "$(comp "$S" qmpctl "")" "$want"
  expect_eq "qmpctl commands after an option" "$(comp "$S" qmpctl --json st)" "status stop"
  expect_eq "qmpctl commands after an option (s)" "$(comp "$S" qmpctl --json s)" "ssh status stop"

  # Every option each command's --help names is offered for "-".
  f0=$failures
  for c in up down run leases free cmdline; do
    got=" $(comp "$S" qfleet "$c" -) "
    for o in $("$QFLEET" "$c" --help | help_opts); do
      [[ $got == *" $o "* ]] || fail "qfleet $c -: $o missing from [$got]"
    done
  done
  got=" $(comp "$S" qfleet alloc mac -) $(comp "$S" qfleet alloc vnc -) $(comp "$S" qfleet alloc port -) "
  for o in $("$QFLEET" alloc --help | help_opts); do
    [[ $got == *" $o "* ]] || fail "qfleet alloc -: $o missing"
  done
  expect_eq "alloc kinds" "$(comp "$S" qfleet alloc "")" "mac port vnc"
  expect_eq "alloc vnc options" "$(comp "$S" qfleet alloc vnc --w)" "--websocket"
  for c in list status pci ifaces qmp qga events console stop; do
    got=" $(comp "$S" qmpctl "$c" -) "
    for o in $("$QMPCTL" "$c" --help | help_opts); do
      [[ $got == *" $o "* ]] || fail "qmpctl $c -: $o missing from [$got]"
    done
  done
  ok_since "$f0" "every option of every --help is completed"
  f0=$failures
  got=" $(comp "$S" qfleet report -) "
  for o in $("$QFLEET" report --help | help_opts); do
    [[ $got == *" $o "* ]] || fail "qfleet report -: $o missing from [$got]"
  done
  for c in ssh vnc hmp; do
    got=" $(comp "$S" qmpctl "$c" -) "
    for o in $("$QMPCTL" "$c" --help | help_opts); do
      [[ $got == *" $o "* ]] || fail "qmpctl $c -: $o missing from [$got]"
    done
  done
  expect_eq "qfleet run --metrics" "$(comp "$S" qfleet run --metrics)" "--metrics-textfile"
  expect_eq "qmpctl ssh: nothing after the guest" "$(comp "$S" qmpctl ssh vm0 "")" ""
  ok_since "$f0" "report, ssh, vnc, hmp and --metrics-textfile are completed"
  expect_eq "qfleet up --no" "$(comp "$S" qfleet up --no)" "--no-clone --no-ssh"
  expect_eq "an option's value is not an option" "$(comp "$S" qfleet up --count "")" ""

  # VM names: the [sections] of the cfg given on the line.
  local cfg=$SRC/cfg/examples/guest.cfg
  expect_eq "up CFG: VMs" "$(comp "$S" qfleet up "$cfg" "")" "vm0"
  expect_eq "up after options: VMs" "$(comp "$S" qfleet up --count 2 "$cfg" --jobs 1 "")" "vm0"
  expect_eq "cmdline CFG: VMs" "$(comp "$S" qfleet cmdline "$SRC/cfg/examples/virt_global.cfg" "")" "KVM LIBVIRT XEN"
  printf '# [comment]\n[web]\ncpu =\n    number=1;\n[ db ]  # spaces\n    [indented]\nmem = size=256\n' >"$T/two.cfg"
  expect_eq "VMs of a hand-made cfg" "$(comp "$S" qfleet up "$T/two.cfg" "")" "db web"
  expect_eq "VMs by prefix" "$(comp "$S" qfleet up "$T/two.cfg" w)" "web"
  expect_eq "cmdline takes one VM" "$(comp "$S" qfleet cmdline "$T/two.cfg" web "")" ""
  # A section name is offered as it is, never expanded or globbed.
  printf '[$(touch %s/pwned)]\n[${HOME}]\n[*]\n' "$T" >"$T/evil.cfg"
  expect_eq "hostile section names are literal" "$(cd "$T" && comp "$S" qfleet up evil.cfg "")" \
    "\$(touch $T/pwned) \${HOME} *"
  [[ ! -e $T/pwned ]] || fail "completing a cfg ran a command from it"
  expect_eq "a missing cfg: no VMs" "$(comp "$S" qfleet up "$T/none.cfg" "")" ""
  mkdir "$T/files" && touch "$T/files/a.cfg" "$T/files/b.suite" "$T/files/c.txt"
  expect_eq "up: cfg files" "$(comp "$S" qfleet up "$T/files/")" "$T/files/a.cfg"
  expect_eq "run: suite files" "$(comp "$S" qfleet run "$T/files/")" "$T/files/b.suite"

  # Guest names: a run dir made by hand (docs/rundir.md), as qmpctl reads it.
  local state=$T/state run=20261122-101500-4242
  mkdir -m 0700 "$state" "$state/runs" "$state/runs/$run"
  local rd=$state/runs/$run
  printf '{"version":1,"run":"%s","pid":999999999,"start_time":1,"started_ms":1795000000000,"control":"control.sock","cfg":"%s"}\n' \
    "$run" "$cfg" >"$rd/controller.json"
  cat >"$rd/guests.json" <<EOF
{"version": 1, "run": "$run", "updated_ms": 1795000000000, "guests": [
 {"name": "vm0-1", "vm": "vm0", "state": "ready", "reason": null, "pid": 4321,
  "macs": ["02:5e:10:aa:bb:01"], "vnc": 3, "ssh_port": 20001, "ip": "10.0.2.15",
  "pci": [{"id": "pt_0", "addr": "0000:00:04.0", "host": null}],
  "qmp": "vm0-1-qmp.sock", "qmp_inspect": "vm0-1-qmp-inspect.sock", "qga": "vm0-1-qga.sock",
  "serial": "vm0-1-serial.log", "log": "vm0-1-qemu.log", "started_ms": 1795000000000,
  "timings_ms": {"launching": 3}, "port_open_ms": 7310},
 {"name": "vm0-2", "vm": "vm0", "state": "failed", "reason": "boot timeout", "pid": 4322,
  "macs": [], "vnc": 4, "ssh_port": 20002, "ip": null, "pci": [],
  "started_ms": 1795000000000, "timings_ms": {}},
 {"name": "web", "vm": "web", "state": "launching", "reason": null, "pid": 4323,
  "macs": [], "vnc": 5, "ssh_port": 20003, "ip": null, "pci": [],
  "started_ms": 1795000000000, "timings_ms": {}}]}
EOF
  expect_eq "guests of --run-dir DIR" "$(comp "$S" qmpctl --run-dir "$rd" status "")" "vm0-1 vm0-2 web"
  expect_eq "guests, --run-dir after the command" "$(comp "$S" qmpctl console --run-dir "$rd" -f "")" "vm0-1 vm0-2 web"
  expect_eq "guests by prefix" "$(comp "$S" qmpctl qga --run-dir "$rd" vm0-)" "vm0-1 vm0-2"
  expect_eq "guests of a run id in --state-dir" \
    "$(comp "$S" qmpctl --state-dir "$state" --run-dir "$run" pci "")" "vm0-1 vm0-2 web"
  expect_eq "guests through the qmpctl on the line" \
    "$(PATH=/usr/bin:/bin comp "$S" "$QMPCTL" --run-dir "$rd" stop w)" "web"
  expect_eq "no guest after the guest" "$(comp "$S" qmpctl --run-dir "$rd" qmp vm0-1 "")" ""
  expect_eq "no guest with -s" "$(comp "$S" qmpctl -s /nonexistent qmp "")" ""
  expect_eq "list takes no guest" "$(comp "$S" qmpctl --run-dir "$rd" list "")" ""
  expect_eq "no live run: no guests" "$(comp "$S" qmpctl --state-dir "$T/empty" status "")" ""
  # Run ids of the state dir.
  expect_eq "qfleet down: run ids" "$(comp "$S" qfleet down --state-dir "$state" "")" "$run"
  expect_eq "qmpctl --run-dir: run ids" "$(comp "$S" qmpctl --state-dir "$state" --run-dir 2026)" "$run"
  expect_eq "run ids from QFLEET_STATE_DIR" "$(QFLEET_STATE_DIR=$state comp "$S" qfleet down "")" "$run"
}

# ---------------------------------------------------------------- configure
# Criterion is needed only with QFLEET_TESTS=ON: configure fresh trees with a
# pkg-config path that has every .pc file of this host but criterion's.
part_configure() {
  local pc=$T/pc d f out dirs
  mkdir "$pc"
  IFS=: read -ra dirs <<<"$(pkg-config --variable pc_path pkg-config)"
  for d in "${dirs[@]}"; do
    for f in "$d"/*.pc; do
      [[ -e $f && ${f##*/} != criterion.pc && ! -e $pc/${f##*/} ]] && ln -s "$f" "$pc/"
    done
  done
  [[ ! -e $pc/criterion.pc ]] || fail "criterion.pc still visible"
  if out=$(PKG_CONFIG_LIBDIR=$pc PKG_CONFIG_PATH='' cmake -S "$SRC" -B "$T/plain" 2>&1); then
    [[ $out == *"tests are not built (QFLEET_TESTS=OFF)"* ]] || fail "no message that tests are off: $out"
    [[ ! -e $T/plain/tests ]] || fail "tests/ configured with QFLEET_TESTS=OFF"
    ok "a plain configure needs no criterion and says the tests are off"
  else
    fail "a plain configure without criterion failed: $out"
  fi
  if out=$(PKG_CONFIG_LIBDIR=$pc PKG_CONFIG_PATH='' cmake -S "$SRC" -B "$T/tests" -DQFLEET_TESTS=ON 2>&1); then
    fail "QFLEET_TESTS=ON configured without criterion"
  else
    [[ $out == *"apt-get install libcriterion-dev"* ]] || fail "QFLEET_TESTS=ON failed without naming libcriterion-dev: $out"
    ok "QFLEET_TESTS=ON without criterion fails naming libcriterion-dev"
  fi
}

# ---------------------------------------------------------------- install
part_install() {
  local P=$T/prefix f f0=$failures
  cmake --install "$BIN" --prefix "$P" >"$T/install.log" || { cat "$T/install.log"; fail "cmake --install"; return; }
  for f in bin/qfleet bin/qmpctl; do
    [[ -x $P/$f && -f $P/$f ]] || fail "$f is not installed"
  done
  for f in share/man/man1/qfleet.1.gz share/man/man1/qmpctl.1.gz share/man/man5/qfleet-cfg.5.gz \
    share/man/man5/qfleet-suite.5.gz share/bash-completion/completions/qfleet \
    share/bash-completion/completions/qmpctl share/doc/qfleet/README.md share/doc/qfleet/cfg.md \
    share/doc/qfleet/SUITES.md share/doc/qfleet/rundir.md share/doc/qfleet/status.md \
    share/doc/qfleet/architecture.md share/doc/qfleet/examples/guest.cfg \
    share/doc/qfleet/examples/smoke.suite share/doc/qfleet/examples/virt_global.cfg; do
    [[ -f $P/$f ]] || fail "$f is not installed"
  done
  cmp -s "$SRC/cfg/README.md" "$P/share/doc/qfleet/cfg.md" || fail "cfg.md is not cfg/README.md"
  gzip -dc "$P/share/man/man5/qfleet-cfg.5.gz" | cmp -s - "$SRC/docs/man/qfleet-cfg.5" ||
    fail "qfleet-cfg.5.gz is not docs/man/qfleet-cfg.5"
  ok_since "$f0" "the install layout"
  # man finds the pages by name under the prefix.
  if command -v man >/dev/null; then
    expect_eq "man -w qfleet-cfg" "$(MANPATH=$P/share/man man -w qfleet-cfg)" "$P/share/man/man5/qfleet-cfg.5.gz"
  fi
  # The installed binary runs, with no build-tree library path.
  local out
  out=$(env -u LD_LIBRARY_PATH "$P/bin/qfleet" cmdline "$P/share/doc/qfleet/examples/guest.cfg" vm0) ||
    fail "installed qfleet cmdline failed"
  [[ $out == *qemu-system-x86_64* && $out == *"-name"* ]] || fail "installed qfleet cmdline printed: $out"
  ok "installed qfleet cmdline"
  # bash-completion loads completions/qmpctl for qmpctl: it must define that.
  expect_eq "installed completion for qmpctl" \
    "$(comp "$P/share/bash-completion/completions/qmpctl" qmpctl con)" "console"
  expect_eq "installed completion for qfleet" \
    "$(comp "$P/share/bash-completion/completions/qfleet" qfleet "do")" "down"
}

# ---------------------------------------------------------------- deb
part_deb() {
  local deb deps
  if ! (cd "$T" && cpack -G DEB --config "$BIN/CPackConfig.cmake" -B "$T/pkg") >"$T/cpack.log" 2>&1; then
    cat "$T/cpack.log"
    fail "cpack -G DEB"
    return
  fi
  deb=$(ls "$T"/pkg/qfleet_*.deb)
  ok "cpack built ${deb##*/}"
  deps=$(dpkg-deb -f "$deb" Depends)
  echo "Depends: $deps"
  local p
  for p in libuv1 libyajl2 libssh-4 qemu-system-x86; do
    [[ ", $deps," =~ [,\ ]${p}[\ ,] ]] || fail "Depends lacks $p"
    # A real Debian package name: known to apt or dpkg on this host.
    apt-cache show "$p" >/dev/null 2>&1 || dpkg-query -W "$p" >/dev/null 2>&1 || fail "$p is not a Debian package here"
  done
  [[ $deps != *qemu-guest-agent* ]] || fail "qemu-guest-agent is a dependency; it runs in the guest"
  ok "Depends names the runtime packages"
  # apt resolves every dependency, versions included, from this Debian
  # host's packages (simulated: nothing is installed).
  if command -v apt-get >/dev/null; then
    local sim
    if sim=$(apt-get -s -q install "$deb" 2>&1) && [[ $sim == *"Inst qfleet "* ]]; then
      ok "apt-get -s install resolves its dependencies"
    else
      fail "apt-get -s install $deb: $sim"
    fi
  fi

  # Install it with dpkg into a scratch root (its own dpkg database; the
  # dependencies are this host's, so they are not checked there).
  local R=$T/root
  mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates"
  : >"$R/var/lib/dpkg/status"
  if ! dpkg --root="$R" --force-depends --force-not-root --log=/dev/null -i "$deb" >"$T/dpkg.log" 2>&1; then
    cat "$T/dpkg.log"
    fail "dpkg --root -i"
    return
  fi
  expect_eq "dpkg --root knows it" "$(dpkg-query --admindir="$R/var/lib/dpkg" -W -f='${Status}' qfleet)" \
    "install ok installed"
  local q=$R/usr/bin/qfleet out
  [[ -x $q && -x $R/usr/bin/qmpctl && -f $R/usr/share/man/man1/qfleet.1.gz &&
    -f $R/usr/share/bash-completion/completions/qfleet ]] || fail "the package lacks files"
  if ldd "$q" | grep -q 'not found'; then fail "installed qfleet: $(ldd "$q" | grep 'not found')"; fi
  # --version once it exists; until then --help (exit 0 and the usage).
  if env -u LD_LIBRARY_PATH "$q" --version >"$T/version" 2>&1; then
    [[ -s $T/version ]] || fail "qfleet --version printed nothing"
    ok "installed qfleet --version: $(head -1 "$T/version")"
  else
    out=$(env -u LD_LIBRARY_PATH "$q" --help) || fail "installed qfleet --help failed"
    [[ $out == usage:\ qfleet* ]] || fail "installed qfleet --help printed: $out"
    ok "installed qfleet --help (qfleet --version does not exist yet)"
  fi
  out=$(env -u LD_LIBRARY_PATH "$q" cmdline "$R/usr/share/doc/qfleet/examples/guest.cfg" vm0) ||
    fail "installed qfleet cmdline failed"
  [[ $out == *qemu-system-x86_64* && $out == *virtserialport* ]] || fail "installed qfleet cmdline printed: $out"
  ok "installed qfleet cmdline on the packaged example"
}

case ${1:-} in
  man|completion|configure|install|deb) "part_$1" ;;
  *) echo "usage: tests/test_install.sh man|completion|configure|install|deb" >&2; exit 2 ;;
esac
if ((failures)); then
  echo "$1: $failures failed" >&2
  exit 1
fi
echo "$1: all passed"
