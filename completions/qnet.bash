# bash completion for qnet. Install: copy to /usr/share/bash-completion/completions/qnet
# (or /etc/bash_completion.d/qnet), or `source` it.
# Command words and options come from the installed qnet's own help (read once per shell), so they
# never drift from the program; qube names from `qnet ls --raw-list`, else `qnet ls --json`.

_qnet_cmd() { command qnet "$@" 2>/dev/null; }

# Command lines in the help start with exactly two spaces; wrapped descriptions with more.
_qnet_commands() {
  [[ -n ${_qnet_cmds-} ]] || _qnet_cmds=$(_qnet_cmd --help | awk '/^Commands:/{c=1;next} c&&/^[^ ]/{c=0} c&&/^  [a-z]/{print $1}' | grep -vx help)
  printf '%s\n' "$_qnet_cmds"
}

_qnet_options() { # $1: command, or empty for the global options
  local var="_qnet_opts_${1//-/_}"
  if [[ -z ${!var-} ]]; then
    local text
    if [[ -n $1 ]]; then text=$(_qnet_cmd help "$1"); else text=$(_qnet_cmd --help | awk '/^Commands:/{exit} {print}'); fi
    printf -v "$var" '%s' "$(grep -oE -- '(^|[ ,])--?[a-zA-Z][a-zA-Z0-9-]*' <<<"$text" | tr -d ' ,' | sort -u)"
  fi
  printf '%s\n' "${!var}"
}

_qnet_qubes() { # $@: global options to pass on (--state DIR)
  local names
  if ! names=$(_qnet_cmd "$@" ls --raw-list); then
    names=$(_qnet_cmd "$@" ls --json | command node -e '
      let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
        try { for (const q of JSON.parse(s)) if (typeof q?.name === "string" && /^[A-Za-z][\w.-]*$/.test(q.name)) console.log(q.name); } catch {}
      });' 2>/dev/null)
  fi
  printf '%s\n' "$names"
}

_qnet() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local i cmd='' global=() nargs=0
  for ((i = 1; i < COMP_CWORD; i++)); do
    local w=${COMP_WORDS[i]}
    if [[ -z $cmd ]]; then
      case $w in
        --state) global+=(--state "${COMP_WORDS[i+1]-}"); ((i++)) ;;
        --state=*) global+=("$w") ;;
        -*) ;;
        *) cmd=$w ;;
      esac
    elif [[ $w != -* ]]; then
      ((nargs++))
    fi
  done
  COMPREPLY=()
  if [[ $prev == --state ]]; then
    COMPREPLY=($(compgen -d -- "$cur"))
    return
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_qnet_options "$cmd")" -- "$cur"))
    return
  fi
  if [[ -z $cmd ]]; then
    COMPREPLY=($(compgen -W "$(_qnet_commands)" -- "$cur"))
    return
  fi
  case $cmd in
    help) ((nargs == 0)) && COMPREPLY=($(compgen -W "$(_qnet_commands)" -- "$cur")) ;;
    # Any number of qubes.
    start | shutdown | kill | remove | ls) COMPREPLY=($(compgen -W "$(_qnet_qubes "${global[@]}")" -- "$cur")) ;;
    # One qube, then the rest is the command's own.
    prefs | nft | counters | rename | clone | run)
      ((nargs == 0)) && COMPREPLY=($(compgen -W "$(_qnet_qubes "${global[@]}")" -- "$cur")) ;;
    firewall)
      if ((nargs == 0)); then COMPREPLY=($(compgen -W "$(_qnet_qubes "${global[@]}")" -- "$cur"))
      elif ((nargs == 1)); then COMPREPLY=($(compgen -W 'list add del reset get set' -- "$cur")); fi ;;
    check) ((nargs < 2)) && COMPREPLY=($(compgen -W "outside $(_qnet_qubes "${global[@]}")" -- "$cur")) ;;
    diff) ((nargs == 0)) && COMPREPLY=($(compgen -W "$(_qnet_commands)" -- "$cur")) ;;
  esac
}
complete -F _qnet qnet
