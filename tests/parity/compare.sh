#!/bin/sh
# compare.sh NODE PARITY SCENARIO.js: run one scenario under Node and its C
# twin (`PARITY NN_name`, parity.c) and compare their stdout, each followed
# by an "exit N" line.
#
# A scenario where bulwark deliberately differs pins both outcomes in its
# .js file, as `// node: LINE` and `// bulwark: LINE` comments (the reason
# is in docs/DOMAINS.md): each side must print exactly its pinned lines,
# and the two must differ. Every other scenario must print the same lines.
set -u
node=$1 parity=$2 js=$3
name=$(basename "$js" .js)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$node" "$js" >"$dir/node" 2>"$dir/node.err"
echo "exit $?" >>"$dir/node"
"$parity" "$name" >"$dir/bulwark" 2>"$dir/bulwark.err"
echo "exit $?" >>"$dir/bulwark"

show() {
  echo "--- node printed:"; cat "$dir/node"
  echo "--- bulwark printed:"; cat "$dir/bulwark"
  echo "--- bulwark's stderr:"; cat "$dir/bulwark.err"
}

if grep -q '^// node: ' "$js"; then
  sed -n 's|^// node: ||p' "$js" >"$dir/node.want"
  sed -n 's|^// bulwark: ||p' "$js" >"$dir/bulwark.want"
  ok=1
  diff -u "$dir/node.want" "$dir/node" >"$dir/d1" || { echo "Node's outcome is not the pinned one:"; cat "$dir/d1"; ok=0; }
  diff -u "$dir/bulwark.want" "$dir/bulwark" >"$dir/d2" || { echo "bulwark's outcome is not the pinned one:"; cat "$dir/d2"; ok=0; }
  if cmp -s "$dir/node" "$dir/bulwark"; then
    echo "the two now agree: drop the pinned lines and the DOMAINS.md row"; ok=0
  fi
  [ $ok = 1 ] || { show; exit 1; }
  echo "differs as documented: $name"
  exit 0
fi
if ! diff -u "$dir/node" "$dir/bulwark"; then
  show
  exit 1
fi
echo "agrees: $name"
