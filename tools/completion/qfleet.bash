# bash completion for qfleet and qmpctl                        -*- shell-script -*-
#
# Installed as share/bash-completion/completions/qfleet and .../qmpctl, or
# sourced by hand: `source tools/completion/qfleet.bash`. Needs only bash
# (not the bash-completion package). Completes commands and options, cfg and
# suite files, VM names from the cfg on the line (its [sections]), guest
# names of the live run (from `qmpctl list --json`, honouring --run-dir and
# --state-dir on the line) and run ids (STATE/runs).
#
# The option lists follow `qfleet COMMAND --help` and `qmpctl COMMAND
# --help`; tests/test_install.sh checks that every option those print is
# offered here.

# Candidates are filtered here, not with `compgen -W`, which would expand
# $(...) and ${...} in them: VM names come from whatever cfg is on the line.
_qfleet_match() { # candidates on stdin, one a line -> COMPREPLY: those starting with $cur
  local w
  COMPREPLY=()
  while IFS= read -r w; do
    [[ -n $w && $w == "$cur"* ]] && COMPREPLY+=("$w")
  done
  return 0
}

_qfleet_reply() { # fixed words... -> COMPREPLY
  _qfleet_match < <(printf '%s\n' "$@")
}

_qfleet_files() { # [glob] -> files (matching glob) and directories
  local IFS=$'\n'
  compopt -o filenames 2>/dev/null
  if [[ -n $1 ]]; then
    COMPREPLY=($(compgen -f -X "!$1" -- "$cur") $(compgen -d -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}

_qfleet_dirs() {
  local IFS=$'\n'
  compopt -o filenames 2>/dev/null
  COMPREPLY=($(compgen -d -- "$cur"))
}

# The [sections] of a DTS cfg: one VM each (cfg/README.md). Section lines
# start in column 0; blanks inside the brackets are not part of the name.
_qfleet_cfg_vms() {
  local f=${1/#\~/$HOME}
  [[ -r $f && -f $f ]] || return 0
  sed -n 's/^\[[[:space:]]*\([^]]*[^][:space:]]\)[[:space:]]*\].*/\1/p' -- "$f" 2>/dev/null
}

# The host state dir as qfleet picks it (docs/rundir.md).
_qfleet_state_dir() { # [--state-dir value]
  if [[ -n $1 ]]; then
    printf '%s\n' "${1/#\~/$HOME}"
  elif [[ -n $QFLEET_STATE_DIR ]]; then
    printf '%s\n' "$QFLEET_STATE_DIR"
  elif [[ $EUID -eq 0 ]]; then
    printf '%s\n' /var/lib/qfleet
  elif [[ -n $XDG_RUNTIME_DIR ]]; then
    printf '%s\n' "$XDG_RUNTIME_DIR/qfleet"
  fi
}

_qfleet_run_ids() { # [--state-dir value]
  local state runs r
  state=$(_qfleet_state_dir "$1")
  runs=$state/runs
  [[ -n $state && -d $runs ]] || return 0
  for r in "$runs"/*; do
    [[ -e $r/controller.json ]] && printf '%s\n' "${r##*/}"
  done
}

# Guest names of the run qmpctl would look at: `qmpctl list --json` prints
# the registry (docs/rundir.md), one "name" member per guest.
_qfleet_guests() { # qmpctl-binary run-dir state-dir
  local bin=$1 args=(list --json --timeout 2)
  [[ -n $2 ]] && args+=(--run-dir "${2/#\~/$HOME}")
  [[ -n $3 ]] && args+=(--state-dir "${3/#\~/$HOME}")
  "$bin" "${args[@]}" 2>/dev/null |
    sed -n 's/^[[:space:]]*"name":[[:space:]]*"\([^"]*\)".*/\1/p'
}

_qfleet() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local cmds="up down run report leases alloc free cmdline migrate templates"
  COMPREPLY=()

  # The command is the first word after qfleet; positional words after it.
  local cmd="" i w state_dir="" run="" pos=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    if [[ -z $cmd ]]; then
      [[ $w != -* ]] && cmd=$w
      continue
    fi
    case $w in
      --state-dir) state_dir=${COMP_WORDS[i+1]}; ((i++)) ;;
      --count|--defaults|--run-dir|--jobs|--boot-timeout|--net-timeout|\
      --mem-budget|--retries|--shard|--status-dir|--junit|--timeout|\
      --owner|--pid|--nic|--prefix|--mac|--display|--range|--port|\
      --qemu-path|--mac-prefix|--downtime-limit|--max-bandwidth|--metrics-textfile|-o|--output|\
      --store|--host-id|--kind|--cluster-wide) ((i++)) ;;
      --run) run=${COMP_WORDS[i+1]}; ((i++)) ;;
      -*) ;;
      *) pos+=("$w") ;;
    esac
  done

  if [[ -z $cmd ]]; then
    if [[ $cur == -* ]]; then _qfleet_reply --help --version; else _qfleet_reply $cmds; fi
    return 0
  fi

  case $prev in
    --defaults|--junit|-o|--output) _qfleet_files; return 0 ;;
    --run-dir|--status-dir|--state-dir|--metrics-textfile) _qfleet_dirs; return 0 ;;
    --qemu-path) _qfleet_files; return 0 ;;
    --count|--jobs|--boot-timeout|--net-timeout|--mem-budget|--retries|\
    --shard|--timeout|--owner|--pid|--nic|--prefix|--mac|--display|\
    --range|--port|--mac-prefix|--downtime-limit|--max-bandwidth) return 0 ;;
    --run) _qfleet_match < <(_qfleet_run_ids "$state_dir"); return 0 ;;
    --store) _qfleet_reply "${QFLEET_STORE:-etcd://}"; compopt -o nospace 2>/dev/null; return 0 ;;
    --host-id|--kind) return 0 ;;
    --cluster-wide) _qfleet_reply vnc migration vlan vnc,migration,vlan; return 0 ;;
  esac

  local opts=""
  case $cmd in
    up)
      opts="--count --defaults --run-dir --state-dir --jobs --boot-timeout
        --net-timeout --no-ssh --until-ready --json -q --quiet --qemu-path --mac-prefix --clone --no-clone --help
        --store --host-id --cluster-wide"
      if [[ $cur != -* ]]; then
        if ((${#pos[@]} == 0)); then _qfleet_files '*.cfg'; else _qfleet_match < <(_qfleet_cfg_vms "${pos[0]}"); fi
        return 0
      fi ;;
    cmdline)
      opts="--defaults --run-dir --qemu-path --mac-prefix --json -h --help"
      if [[ $cur != -* ]]; then
        case ${#pos[@]} in
          0) _qfleet_files '*.cfg' ;;
          1) _qfleet_match < <(_qfleet_cfg_vms "${pos[0]}") ;;
        esac
        return 0
      fi ;;
    run)
      opts="--jobs --mem-budget --retries --shard --status-dir --junit --run-dir
        --state-dir --boot-timeout --list --json --plain -q --quiet --help
        --metrics-textfile --mac-prefix --store --host-id --cluster-wide"
      if [[ $cur != -* ]]; then _qfleet_files '*.suite'; return 0; fi ;;
    report)
      opts="-o --output --json -h --help"
      if [[ $cur != -* ]]; then
        ((${#pos[@]} == 0)) && _qfleet_dirs
        return 0
      fi ;;
    down)
      opts="--state-dir --timeout --json --help"
      if [[ $cur != -* ]]; then
        ((${#pos[@]} == 0)) && _qfleet_match < <(_qfleet_run_ids "$state_dir")
        return 0
      fi ;;
    migrate)
      opts="--run --state-dir --timeout --cancel --downtime-limit --max-bandwidth --json --help"
      if [[ $cur != -* ]]; then
        ((${#pos[@]} < 2)) && _qfleet_match < <(_qfleet_guests qmpctl "$run" "$state_dir")
        return 0
      fi ;;
    templates)
      if ((${#pos[@]} == 0)) && [[ $cur != -* ]]; then _qfleet_reply rm; return 0; fi
      opts="--json --state-dir --all --help" ;;
    leases) opts="--json --with-prefix --state-dir --store --host-id --kind --help" ;;
    free) opts="--owner --json --state-dir --help" ;;
    alloc)
      if ((${#pos[@]} == 0)) && [[ $cur != -* ]]; then _qfleet_reply mac vnc port; return 0; fi
      opts="--owner --hold --pid --state-dir --json --store --host-id --help"
      case ${pos[0]} in
        mac) opts+=" --nic --prefix --mac --shared --count" ;;
        vnc) opts+=" --display --websocket" ;;
        port) opts+=" --range --port" ;;
      esac ;;
    *) return 0 ;;
  esac
  [[ $cur == -* ]] && _qfleet_reply $opts
  return 0
}

_qmpctl() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local cmds="list status pci ifaces qmp qga events console stop migrate ssh vnc hmp"
  local gopts="--run-dir --state-dir -s --socket --json --timeout -h --help --version"
  COMPREPLY=()

  # Global options may come before or after the command.
  local cmd="" i w run_dir="" state_dir="" sock="" pos=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    case $w in
      --run-dir) run_dir=${COMP_WORDS[i+1]}; ((i++)) ;;
      --state-dir) state_dir=${COMP_WORDS[i+1]}; ((i++)) ;;
      -s|--socket) sock=${COMP_WORDS[i+1]}; ((i++)) ;;
      --timeout|-n|--lines|--store) ((i++)) ;;
      -*) ;;
      *) if [[ -z $cmd ]]; then cmd=$w; else pos+=("$w"); fi ;;
    esac
  done

  case $prev in
    -s|--socket) _qfleet_files; return 0 ;;
    --state-dir) _qfleet_dirs; return 0 ;;
    --run-dir)
      _qfleet_match < <(_qfleet_run_ids "$state_dir")
      local IFS=$'\n'
      compopt -o filenames 2>/dev/null
      COMPREPLY+=($(compgen -d -- "$cur"))
      return 0 ;;
    --timeout|-n|--lines) return 0 ;;
    --store) _qfleet_reply "${QFLEET_STORE:-etcd://}"; compopt -o nospace 2>/dev/null; return 0 ;;
  esac

  if [[ -z $cmd ]]; then
    if [[ $cur == -* ]]; then _qfleet_reply $gopts; else _qfleet_reply $cmds; fi
    return 0
  fi

  local opts=$gopts
  case $cmd in
    list) opts+=" --all --cluster --store" ;;
    pci) opts+=" --check" ;;
    console) opts+=" -f --follow -n --lines --raw" ;;
    status|ifaces|qmp|qga|events|stop|migrate|vnc|hmp) ;;
    ssh) ((${#pos[@]} > 0)) && return 0 ;; # after the guest: a command for the guest
    *) return 0 ;;
  esac
  if [[ $cur == -* ]]; then _qfleet_reply $opts; return 0; fi

  # The first argument of every command but list is a guest (none with -s).
  if [[ $cmd != list && -z $sock ]] && ((${#pos[@]} == 0)); then
    local bin=${COMP_WORDS[0]/#\~/$HOME}
    type -P -- "$bin" >/dev/null || bin=qmpctl
    _qfleet_match < <(_qfleet_guests "$bin" "$run_dir" "$state_dir")
  fi
  return 0
}

complete -F _qfleet qfleet
complete -F _qmpctl qmpctl
