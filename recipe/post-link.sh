#!/bin/bash
# conda post-link for q2pconf: seed $PREFIX/etc/qiime2_config.toml, the environment's
# parallel config, unless a config (or anything else) is already there.
# conda rolls the install back when a post-link fails, so this never exits non-zero; it
# prints nothing on stdout (conda's rule), writes messages to $PREFIX/.messages.txt (shown
# after the install) and touches nothing outside $PREFIX. Installers that skip link scripts
# leave the seeding to etc/conda/activate.d/q2pconf.sh.
[ -n "${PREFIX:-}" ] || exit 0
config="$PREFIX/etc/qiime2_config.toml"
if [ -e "$config" ] || [ -L "$config" ]; then
    exit 0
fi
# -I: only the environment's own q2pconf (no PYTHONPATH, user site or current directory);
# -B: no bytecode files left behind that conda does not know about.
if ! reason=$("$PREFIX/bin/python" -I -B -m q2pconf seed --prefix "$PREFIX" 2>&1 >/dev/null); then
    {
        echo "q2pconf: could not write the default parallel config to $config"
        [ -z "$reason" ] || echo "  (${reason##*$'\n'})"
        echo "  q2pconf uses its default from memory; 'q2pconf init --user' writes a config you can edit."
    } >>"$PREFIX/.messages.txt" 2>/dev/null
fi
exit 0
