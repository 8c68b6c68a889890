#!/bin/sh
# Guest-side benchmarks of `cargo xtask bench mount-overhead|storm`, run by /init instead of
# scenarios.sh when the kernel command line has lab.bench=NAME[,NAME...].
#
# Knobs (kernel command line):
#   lab.bench=mount,storm    which benchmarks
#   lab.attach=kprobe|fentry how the agent attaches (default kprobe)
#   lab.rounds=N             mount: A/B block pairs (default 6)
#   lab.cycles=N             mount: mount+umount cycles per block (default 8)
#   lab.pages=N              storm: pages to poison (default 10000)
#
# Results come back as files (same transport as scenarios.sh):
#   bench-mount/cycles.txt   "mode=clean|recover probes=none|all block=B cycle=C mount_ns= umount_ns="
#   bench-storm/result.txt   key=value facts, bench-storm/agent.log (the agent's totals line)

PMEM=/dev/pmem0
ATTACH=kprobe
BENCH=mount
ROUNDS=6
CYCLES=8
PAGES=10000
for kv in $(cat /proc/cmdline); do
	case "$kv" in
	lab.bench=*) BENCH=${kv#lab.bench=} ;;
	lab.attach=*) ATTACH=${kv#lab.attach=} ;;
	lab.rounds=*) ROUNDS=${kv#lab.rounds=} ;;
	lab.cycles=*) CYCLES=${kv#lab.cycles=} ;;
	lab.pages=*) PAGES=${kv#lab.pages=} ;;
	esac
done
AGENT=/bin/notify
OUT=/tmp/out
mkdir -p $OUT

emit() { # emit DIR FILE...
	for f in "$@"; do
		[ -f "$OUT/$1/$f" ] || continue
		echo "@@NOTIFY-FILE-BEGIN $1/$f"
		cat "$OUT/$1/$f"
		[ -n "$(tail -c 1 "$OUT/$1/$f")" ] && echo
		echo "@@NOTIFY-FILE-END $1/$f"
	done
}

# Starts the agent with every probe attached; waits for "attached". Sets AGENT_PID.
agent_up() { # agent_up DIR TAG
	"$AGENT" trace -o json --attach "$ATTACH" --output "$OUT/$1/events-$2.jsonl" \
		> /dev/null 2> "$OUT/$1/agent-$2.log" &
	AGENT_PID=$!
	i=0
	while [ $i -lt 1200 ]; do
		grep -q attached "$OUT/$1/agent-$2.log" 2>/dev/null && return 0
		kill -0 $AGENT_PID 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	echo "@@NOTIFY-WARN bench: agent did not attach: $(tail -n 3 "$OUT/$1/agent-$2.log")"
	return 1
}

agent_down() {
	kill -INT $AGENT_PID 2>/dev/null
	wait $AGENT_PID
}

bench_mount() {
	D=bench-mount
	mkdir -p "$OUT/$D"
	echo "@@NOTIFY-SCENARIO-BEGIN $D"
	mkfs.xfs -f -m rmapbt=1,reflink=1 $PMEM > /dev/null 2>&1 || echo "@@NOTIFY-WARN mkfs failed"
	# Some content, so the mount has an AG to read and the log something to do.
	mount -t xfs -o dax=always $PMEM /mnt
	for i in 1 2 3 4 5 6 7 8; do dd if=/dev/zero of=/mnt/f$i bs=64k count=16 2>/dev/null; done
	umount /mnt
	: > "$OUT/$D/cycles.txt"
	for mode in clean recover; do
		arg=
		[ $mode = recover ] && arg=recover
		# One warm-up block, not recorded.
		benchhelp mount $PMEM /mnt 2 $arg > /dev/null
		b=0
		while [ $b -lt "$ROUNDS" ]; do
			# A B on even blocks, B A on odd ones.
			if [ $((b % 2)) -eq 0 ]; then order="none all"; else order="all none"; fi
			for probes in $order; do
				if [ $probes = all ]; then
					agent_up "$D" "$mode-$b" || { b=$ROUNDS; break; }
				fi
				benchhelp mount $PMEM /mnt "$CYCLES" $arg |
					sed "s/^/mode=$mode probes=$probes block=$b /" >> "$OUT/$D/cycles.txt"
				[ $probes = all ] && agent_down
			done
			echo "@@NOTIFY-SAY [$D] $mode block $b done"
			b=$((b + 1))
		done
	done
	# Evidence that the probes saw the mounts: event kinds of the last agent run.
	for f in "$OUT/$D"/events-*.jsonl; do
		n=$(grep -c get_tree_exit "$f")
		echo "$(basename "$f") get_tree_exit=$n lines=$(wc -l < "$f")"
	done > "$OUT/$D/agent-events.txt"
	tail -q -n 1 "$OUT/$D"/agent-*.log > "$OUT/$D/agent-totals.txt"
	emit "$D" cycles.txt agent-events.txt agent-totals.txt
	echo "@@NOTIFY-SCENARIO-END $D"
}

bench_storm() {
	D=bench-storm
	mkdir -p "$OUT/$D"
	echo "@@NOTIFY-SCENARIO-BEGIN $D"
	res() { echo "$1=$2" >> "$OUT/$D/result.txt"; }
	: > "$OUT/$D/result.txt"
	grep -q " /mnt " /proc/mounts && umount /mnt
	mkfs.xfs -f -m rmapbt=1,reflink=1 $PMEM > /dev/null 2>&1
	mount -t xfs -o dax=always $PMEM /mnt
	mb=$(((PAGES * 4096 + 1048575) / 1048576))
	dd if=/dev/zero of=/mnt/storm bs=1M count=$mb 2>/dev/null
	sync
	echo 0 > /proc/sys/vm/memory_failure_early_kill
	res pages "$PAGES"
	agent_up "$D" storm || { emit "$D" result.txt agent-storm.log; echo "@@NOTIFY-SCENARIO-END $D"; return; }
	rss_idle=$(awk '/VmRSS/{print $2}' /proc/$AGENT_PID/status)
	cpu0=$(awk '{print $14 + $15}' /proc/$AGENT_PID/stat)
	t0=$(cut -d' ' -f1 /proc/uptime)
	out=$(benchhelp storm /mnt/storm "$PAGES")
	t1=$(cut -d' ' -f1 /proc/uptime)
	echo "$out" | tr ' ' '\n' >> "$OUT/$D/result.txt"
	# Drained: the agent's output stops growing.
	last=-1
	while :; do
		n=$(wc -l < "$OUT/$D/events-storm.jsonl")
		[ "$n" = "$last" ] && break
		last=$n
		sleep 1
	done
	t2=$(cut -d' ' -f1 /proc/uptime)
	rss_storm=$(awk '/VmHWM/{print $2}' /proc/$AGENT_PID/status)
	cpu1=$(awk '{print $14 + $15}' /proc/$AGENT_PID/stat)
	agent_down
	res storm_wall_s "$(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}')"
	res drained_after_s "$(echo "$t1 $t2" | awk '{printf "%.2f", $2 - $1}')"
	res agent_rss_idle_kb "$rss_idle"
	res agent_rss_peak_kb "$rss_storm"
	res agent_cpu_ticks "$((cpu1 - cpu0))"
	res clk_tck "$(getconf CLK_TCK 2>/dev/null || echo 100)"
	res lines "$(wc -l < "$OUT/$D/events-storm.jsonl")"
	for k in memory_failure_enter notify_enter notify_exit notification; do
		res "kind_$k" "$(grep -c "\"kind\":\"$k\"" "$OUT/$D/events-storm.jsonl")"
	done
	res first_ktime "$(head -n 1 "$OUT/$D/events-storm.jsonl" | sed 's/.*"ktime_ns":\([0-9]*\).*/\1/')"
	res last_ktime "$(tail -n 1 "$OUT/$D/events-storm.jsonl" | sed 's/.*"ktime_ns":\([0-9]*\).*/\1/')"
	res last_seq "$(tail -n 1 "$OUT/$D/events-storm.jsonl" | sed 's/.*"seq":\([0-9]*\).*/\1/')"
	tail -n 1 "$OUT/$D/agent-storm.log" > "$OUT/$D/agent-totals.txt"
	# Ring capacity: the same storm on fresh pages while the agent is stopped (SIGSTOP), so
	# nothing drains the 4 MiB ring until it is over.
	dd if=/dev/zero of=/mnt/storm2 bs=1M count=$mb 2>/dev/null
	sync
	if agent_up "$D" paused; then
		kill -STOP $AGENT_PID
		out=$(benchhelp storm /mnt/storm2 "$PAGES")
		echo "$out" | tr ' ' '\n' | sed 's/^/paused_/' >> "$OUT/$D/result.txt"
		kill -CONT $AGENT_PID
		last=-1
		while :; do
			n=$(wc -l < "$OUT/$D/events-paused.jsonl")
			[ "$n" = "$last" ] && break
			last=$n
			sleep 1
		done
		agent_down
		tail -n 1 "$OUT/$D/agent-paused.log" > "$OUT/$D/agent-totals-paused.txt"
	fi
	umount /mnt 2>/dev/null
	emit "$D" result.txt agent-totals.txt agent-totals-paused.txt
	echo "@@NOTIFY-SCENARIO-END $D"
}

echo "@@NOTIFY-PLAN bench=$BENCH attach=$ATTACH rounds=$ROUNDS cycles=$CYCLES pages=$PAGES"
for b in $(echo "$BENCH" | tr ',' ' '); do
	case "$b" in
	mount) bench_mount ;;
	storm) bench_storm ;;
	*) echo "@@NOTIFY-WARN unknown bench $b" ;;
	esac
done
