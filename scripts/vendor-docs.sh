#!/bin/sh
# Copy Swagger UI's browser build from the npm package swagger-ui-dist into vidq's static
# files, so that /docs loads nothing from another host.
#
#     scripts/vendor-docs.sh SWAGGER_UI_VERSION     (what `make vendor-docs` runs)
#
# Only the bundle, its stylesheet, the favicon and the licence are kept, with a VERSION
# file naming the package, its version, the files taken and the tarball's integrity.
set -eu

version=$1
name=swagger-ui-dist
files="swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE"
target=$(cd "$(dirname "$0")/../vidq/web/static" && pwd)/vendor/swagger-ui
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

tarball=$(cd "$work" && npm pack --silent "$name@$version")
tar -xzf "$work/$tarball" -C "$work"
integrity=$(cd "$work" && npm view --silent "$name@$version" dist.integrity)
rm -rf "$target"
mkdir -p "$target"
for file in $files; do
    cp "$work/package/$file" "$target/"
done
printf '%s %s\nfiles: %s\nintegrity: %s\n' "$name" "$version" "$files" "$integrity" \
    >"$target/VERSION"
echo "vendored $name $version: $(wc -c <"$target/swagger-ui-bundle.js") bytes of bundle"
