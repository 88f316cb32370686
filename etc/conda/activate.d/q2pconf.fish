# q2pconf: on activation, seed this environment's parallel config
# ($CONDA_PREFIX/etc/qiime2_config.toml) when it is missing: the safety net for installers
# that skip the package's post-link script (pixi, rattler). Same rules as q2pconf.sh: prints
# nothing unless seeding fails (then one line on stderr), never fails the activation, starts
# no interpreter when the file exists, skips a read-only environment silently.
if test -n "$CONDA_PREFIX"; and not test -e "$CONDA_PREFIX/etc/qiime2_config.toml"
    and not test -L "$CONDA_PREFIX/etc/qiime2_config.toml"
    and test -x "$CONDA_PREFIX/bin/python"; and test -w "$CONDA_PREFIX/etc"
    if not "$CONDA_PREFIX/bin/python" -I -B -m q2pconf seed --prefix "$CONDA_PREFIX" >/dev/null 2>&1
        echo "q2pconf: could not write $CONDA_PREFIX/etc/qiime2_config.toml (run 'q2pconf info' to see the config in use)" >&2
    end
end
