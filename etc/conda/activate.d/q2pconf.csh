# q2pconf: on activation, seed this environment's parallel config
# ($CONDA_PREFIX/etc/qiime2_config.toml) when it is missing: the safety net for installers
# that skip the package's post-link script (pixi, rattler). Same rules as q2pconf.sh: prints
# nothing unless seeding fails (then one line on stderr), never fails the activation, starts
# no interpreter when the file exists, skips a read-only environment silently.
if ( $?CONDA_PREFIX ) then
    if ( "$CONDA_PREFIX" != "" ) then
        if ( ! -e "$CONDA_PREFIX/etc/qiime2_config.toml" && -x "$CONDA_PREFIX/bin/python" ) then
            # test(1) rather than csh's own operators: csh has no symlink test, and tcsh's -w
            # does not see read-only mounts.
            if ( { test ! -L "$CONDA_PREFIX/etc/qiime2_config.toml" } && { test -w "$CONDA_PREFIX/etc" } ) then
                "$CONDA_PREFIX/bin/python" -I -B -m q2pconf seed --prefix "$CONDA_PREFIX" >& /dev/null
                if ( $status != 0 ) then
                    echo "q2pconf: could not write $CONDA_PREFIX/etc/qiime2_config.toml (run 'q2pconf info' to see the config in use)" > /dev/stderr
                endif
            endif
        endif
    endif
endif
