#!/bin/sh
# Copy the browser builds of hls.js, dash.js and tus-js-client from their npm packages into
# the page's static files, so that the page plays HLS and DASH and sends resumable (tus)
# uploads without fetching anything at run time. The tests run the same tus-js-client file
# under node against a live server.
#
#     scripts/vendor-players.sh HLS_JS_VERSION DASHJS_VERSION TUS_JS_VERSION   (`make vendor`)
#
# Only the minified single-file builds and the licences are kept. Each folder gets a
# VERSION file naming the package, its version, the file taken and the tarball's integrity.
set -eu

hls_version=$1
dashjs_version=$2
tus_version=$3
static=$(cd "$(dirname "$0")/../vidq/web/static" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

# vendor NAME VERSION FOLDER FILE LICENCE...: unpack NAME@VERSION, keep FILE and the licences.
vendor() {
    name=$1 version=$2 folder=$3 file=$4
    shift 4
    unpacked=$work/$folder
    mkdir -p "$unpacked"
    tarball=$(cd "$work" && npm pack --silent "$name@$version")
    tar -xzf "$work/$tarball" -C "$unpacked"
    integrity=$(cd "$work" && npm view --silent "$name@$version" dist.integrity)
    target=$static/vendor/$folder
    rm -rf "$target"
    mkdir -p "$target"
    cp "$unpacked/package/$file" "$target/"
    for licence in "$@"; do
        cp "$unpacked/package/$licence" "$target/"
    done
    printf '%s %s\nfile: %s\nintegrity: %s\n' "$name" "$version" "$file" "$integrity" \
        >"$target/VERSION"
    echo "vendored $name $version: $(wc -c <"$target/$(basename "$file")") bytes"
}

vendor hls.js "$hls_version" hls dist/hls.min.js LICENSE
vendor dashjs "$dashjs_version" dashjs dist/modern/umd/dash.mediaplayer.min.js \
    LICENSE.md dist/modern/umd/dash.mediaplayer.min.js.LICENSE.txt
vendor tus-js-client "$tus_version" tus dist/tus.min.js LICENSE
