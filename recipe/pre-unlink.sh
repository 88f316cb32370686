#!/bin/bash
# conda pre-unlink for q2pconf: remove the config that post-link (or activation) seeded,
# $PREFIX/etc/qiime2_config.toml, with its hash file .qiime2_config.toml.sha256, but only
# while `sha256sum -c` says the config is unchanged. An edited config is kept. Files a link
# script writes are not in conda-meta, so conda would otherwise leave them behind.
# Never fails: a failing pre-unlink must not block the removal.
[ -n "${PREFIX:-}" ] || exit 0
cd "$PREFIX/etc" 2>/dev/null || exit 0
config=qiime2_config.toml
stamp=.qiime2_config.toml.sha256
[ -f "$stamp" ] && [ -f "$config" ] && [ ! -L "$config" ] || exit 0
# The stamp must be q2pconf's one line naming the config, not a check of some other file.
case "$(cat "$stamp" 2>/dev/null)" in
    *$'\n'*) exit 0 ;;
    *"  $config") ;;
    *) exit 0 ;;
esac
if command -v sha256sum >/dev/null 2>&1; then
    sha256sum --status -c "$stamp" >/dev/null 2>&1 || exit 0
elif command -v shasum >/dev/null 2>&1; then  # macOS
    shasum -a 256 --status -c "$stamp" >/dev/null 2>&1 || exit 0
else
    exit 0
fi
rm -f "$config" "$stamp" 2>/dev/null
exit 0
