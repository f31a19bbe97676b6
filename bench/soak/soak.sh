#!/usr/bin/env bash
# soak.sh: questlog up left running under the players scenario with a short
# --topic-retention, as issue 14 asks: is the data directory's size flat,
# is up's memory flat, and does the lake hold every record of the topic
# exactly once at the end?
#
#   bench/soak/soak.sh                       # 20 min, 200 players, 500 req/s
#   DURATION=30m RATE=1000 bench/soak/soak.sh
#
# Every SAMPLE seconds it prints one line: elapsed time, the broker's bytes
# and files on disk, the lake's bytes and Parquet files, up's resident and
# anonymous memory, and the topic's start and end offsets (summed over the
# partitions, from /metrics). After the load it waits for the lake to reach
# the topic's end (extract --once waits for up's follower), runs lake check,
# and counts the lake's rows and distinct (partition, offset) pairs against
# the topic's end offsets. Run it from the repository root.
set -euo pipefail

DURATION=${DURATION:-20m}
RATE=${RATE:-500}
USERS=${USERS:-200}
RETENTION=${RETENTION:-2m}
SAMPLE=${SAMPLE:-30}

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/questlog" ./cmd/questlog
q="$work/questlog"
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=127.0.0.1:$(freeport)
broker=127.0.0.1:$(freeport)
data="$work/data"
common=(--data-dir "$data" --broker-listen "$broker")

echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs; $(git rev-parse --short HEAD); $(date -u +%FT%TZ)"
echo "# up --topic-retention $RETENTION; load --scenario players --users $USERS --rate $RATE -t $DURATION"
"$q" up "${common[@]}" --http "$http" --topic-retention "$RETENTION" --password-cost 4 \
	--login-failures-per-user 0 --login-failures-per-address 0 --log-level warn 2>"$work/up.log" &
up=$!
until curl -sf "http://$http/readyz" >/dev/null; do sleep 0.2; done

sample() {
	local t=$1 m bb bf lb lf rss anon start end
	m=$(curl -sf "http://$http/metrics" || true)
	bb=$(awk '/^questlog_broker_bytes /{print $2}' <<<"$m")
	bf=$(awk '/^questlog_broker_files /{print $2}' <<<"$m")
	start=$(awk '/^questlog_broker_log_start_offset/{s+=$2} END{printf "%d", s}' <<<"$m")
	end=$(awk '/^questlog_broker_log_end_offset/{s+=$2} END{printf "%d", s}' <<<"$m")
	lb=$(du -sb "$data/lake" 2>/dev/null | cut -f1)
	lf=$(find "$data/lake" -name '*.parquet' 2>/dev/null | wc -l)
	rss=$(awk '/^VmRSS/{print $2}' /proc/$up/status)
	anon=$(awk '/^RssAnon/{print $2}' /proc/$up/status)
	awk -v t="$t" -v bb="${bb:-0}" -v bf="${bf:-?}" -v lb="${lb:-0}" -v lf="$lf" -v rss="$rss" -v anon="$anon" \
		-v start="$start" -v end="$end" -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
		printf "%6ss  broker %7.1f MiB %4s files  lake %7.1f MiB %5d files  up RSS %6.1f MiB (anon %6.1f)  topic %d..%d  load %s\n",
			t, bb/1048576, bf, lb/1048576, lf, rss/1024, anon/1024, start, end, load }'
}

"$q" load --scenario players --users "$USERS" --rate "$RATE" -t "$DURATION" -q --format json "http://$http" >"$work/load.json" &
load=$!
t0=$(date +%s)
while kill -0 $load 2>/dev/null; do
	sample $(($(date +%s) - t0))
	sleep "$SAMPLE"
done
wait $load
python3 - "$work/load.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("# load:", {k: r[k] for k in r if k in ("complete", "errors", "rps", "status", "requests", "failed")})
PY
sample $(($(date +%s) - t0))

"$q" extract --once "${common[@]}" --wait 5m | sed 's/^/# extract --once: /'
"$q" lake check "${common[@]}" | sed 's/^/# lake check: /'
m=$(curl -sf "http://$http/metrics")
end=$(awk '/^questlog_broker_log_end_offset/{s+=$2} END{printf "%d", s}' <<<"$m")
"$q" query "${common[@]}" "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM quarantine) AS rows, (SELECT count(DISTINCT (kafka_partition, kafka_offset)) FROM events) AS distinct_offsets" | sed 's/^/# /'
echo "# topic end offsets summed: $end"
sample $(($(date +%s) - t0))
grep -c '"level":"ERROR"' "$work/up.log" | sed 's/^/# up ERROR lines: /' || true
