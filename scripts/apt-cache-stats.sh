#!/usr/bin/env bash
# How many Debian package downloads the control node's apt-cacher-ng (make setup)
# served from its cache, and how many it had to fetch from the mirror.
#
#   scripts/apt-cache-stats.sh --mark FILE          remember "now" in FILE
#   scripts/apt-cache-stats.sh --since-mark FILE    count from the time in FILE
#   scripts/apt-cache-stats.sh --since EPOCH        count from EPOCH (seconds)
#   scripts/apt-cache-stats.sh                      count the whole log
#   ... [--client PREFIX] [--log FILE] [--format text|kv]
#   (--client 10.89.65. counts only the clients whose address starts so)
#
# apt-cacher-ng writes one line per transfer to its log, epoch|flag|bytes|client|path:
# flag O is a file sent to a client, I a file fetched from upstream, E an error.
# A package (.deb/.udeb/.ddeb) sent (O) without a fetch (I) of the same path in the
# window was a hit; each fetch is a miss. Index files (Release, Packages) are
# counted apart: apt asks the mirror about them on every update by design.
# Lines older than the rotated log (apt-cacher.log.1, plain text) are not read.
set -euo pipefail

log=/var/log/apt-cacher-ng/apt-cacher.log
since=0
format=text
client=
usage() { sed -n '2,11s/^# \{0,1\}//p' "$0" >&2; exit 2; }

while (($#)); do
    case $1 in
        --mark) [[ $# -ge 2 ]] || usage; date +%s >"$2"; exit 0 ;;
        --since) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || { echo "apt-cache-stats: --since needs an epoch in seconds" >&2; exit 2; }
                 since=$2; shift ;;
        --since-mark) [[ $# -ge 2 && -r $2 ]] || { echo "apt-cache-stats: --since-mark needs a file written by --mark" >&2; exit 2; }
                      since=$(tr -dc 0-9 <"$2"); [[ -n $since ]] || { echo "apt-cache-stats: no epoch in $2" >&2; exit 2; }
                      shift ;;
        --client) [[ $# -ge 2 ]] || usage; client=$2; shift ;;
        --log) [[ $# -ge 2 ]] || usage; log=$2; shift ;;
        --format) [[ $# -ge 2 && $2 =~ ^(text|kv)$ ]] || { echo "apt-cache-stats: --format is text or kv" >&2; exit 2; }
                  format=$2; shift ;;
        -h|--help) usage ;;
        *) echo "apt-cache-stats: unknown argument '$1'" >&2; usage ;;
    esac
    shift
done

logs=()
[[ -r $log.1 ]] && logs+=("$log.1")
[[ -r $log ]] && logs+=("$log")
if ((${#logs[@]} == 0)); then
    echo "apt-cache-stats: no apt-cacher-ng log at $log (is the cache installed? make setup)" >&2
    exit 1
fi

awk -F'|' -v since="$since" -v format="$format" -v client="$client" '
    $1 !~ /^[0-9]+$/ || $1 < since { next }
    client != "" && index($4, client) != 1 { next }
    $2 == "E" { errors++; next }
    $5 ~ /\.(u|d)?deb$/ {
        if ($2 == "O") { sent[$5]++; sent_bytes[$5] += $3 }
        else if ($2 == "I") { fetched[$5]++; fetched_bytes += $3 }
        next
    }
    $2 == "O" { index_sent++ }
    $2 == "I" { index_fetched++ }
    END {
        for (p in sent) {
            extra = sent[p] - fetched[p]
            if (extra > 0) { hits += extra; saved += extra * sent_bytes[p] / sent[p] }
        }
        for (p in fetched) misses += fetched[p]
        hits += 0; misses += 0; errors += 0; index_sent += 0; index_fetched += 0
        if (format == "kv") {
            printf "hits=%d misses=%d saved_bytes=%d fetched_bytes=%d index_sent=%d index_fetched=%d errors=%d\n",
                hits, misses, saved, fetched_bytes, index_sent, index_fetched, errors
        } else {
            printf "apt-cacher-ng: %d package downloads served from the cache (hits, %.1f MB saved), %d fetched from the mirror (misses, %.1f MB); index files: %d sent, %d fetched; errors: %d\n",
                hits, saved / 1e6, misses, fetched_bytes / 1e6, index_sent, index_fetched, errors
        }
    }' "${logs[@]}"
