# q2pconf: on activation, seed this environment's parallel config
# ($CONDA_PREFIX/etc/qiime2_config.toml) when it is missing. conda runs the package's
# post-link script for that, but pixi and other rattler-based installers skip link scripts,
# so this is the safety net.
#
# Sourced by bash, zsh and dash, possibly under `set -eu`: it reads no unset variable,
# changes no shell option, leaves no variable behind, always ends with status 0 and prints
# nothing unless seeding fails (then one line on stderr; q2pconf falls back to its default in
# memory). When the file exists it only runs `test`: no interpreter starts. A read-only
# environment (shared installs) is skipped silently: q2pconf's lookup handles it at run time.
# python -I: ignore PYTHONPATH, user site-packages and the current directory, so the
# environment's own q2pconf does the seeding; -B: leave no bytecode files behind.
if [ -n "${CONDA_PREFIX:-}" ] && [ ! -e "${CONDA_PREFIX}/etc/qiime2_config.toml" ] \
    && [ ! -L "${CONDA_PREFIX}/etc/qiime2_config.toml" ] \
    && [ -x "${CONDA_PREFIX}/bin/python" ] && [ -w "${CONDA_PREFIX}/etc" ]; then
    "${CONDA_PREFIX}/bin/python" -I -B -m q2pconf seed --prefix "${CONDA_PREFIX}" >/dev/null 2>&1 \
        || echo "q2pconf: could not write ${CONDA_PREFIX}/etc/qiime2_config.toml (run 'q2pconf info' to see the config in use)" >&2 \
        || :
fi
