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
#   lab.sizes=1,10,100       contain: affected files per figure
#   lab.ring=SIZE            storm: the agent's --ring-size (default: the agent's default)
#   lab.arms=none,all        mount: the arms (default none,all,bpftrace when bpftrace is there)
#
# Results come back as files (same transport as scenarios.sh):
#   bench-mount/cycles.txt   "mode=clean|recover probes=none|all block=B cycle=C mount_ns= umount_ns=
#                            mount_cpu_ns= umount_cpu_ns=" (wall, and the mounting thread's CPU)
#   bench-mount/kinds.txt    "mode=M count=N kind=K" (first agent run of each mode), env.txt
#   bench-mount/hits.txt     "mode=M prog=NAME run_cnt=N run_time_ns=T" (bpf_stats, untimed block)
#   bench-mount/bt-cpu.txt   "mode=M block=B bpftrace_ns=T bpftrace_cs=N" (bpftrace's own CPU),
#                            bt-kinds.txt "mode=M count=N kind=K", bt-attach.txt (what it attached)
#   bench-storm/result.txt   key=value facts, bench-storm/agent.log (the agent's totals line)
#   bench-contain/rounds.txt "round=R pos=P n=N mode=kernel|replay sigbus= first_ns= last_ns= ..."

PMEM=/dev/pmem0
ATTACH=kprobe
BENCH=mount
ROUNDS=6
CYCLES=8
PAGES=10000
SIZES="1 10 100"
RINGOPT=
ARMSOPT=
for kv in $(cat /proc/cmdline); do
	case "$kv" in
	lab.bench=*) BENCH=${kv#lab.bench=} ;;
	lab.attach=*) ATTACH=${kv#lab.attach=} ;;
	lab.rounds=*) ROUNDS=${kv#lab.rounds=} ;;
	lab.cycles=*) CYCLES=${kv#lab.cycles=} ;;
	lab.pages=*) PAGES=${kv#lab.pages=} ;;
	lab.sizes=*) SIZES=$(echo "${kv#lab.sizes=}" | tr ',' ' ') ;;
	lab.ring=*) RINGOPT="--ring-size ${kv#lab.ring=}" ;;
	lab.arms=*) ARMSOPT=$(echo "${kv#lab.arms=}" | tr ',' ' ') ;;
	esac
done
AGENT=/bin/notify
OUT=/tmp/out
mkdir -p $OUT

. /lab/transport.sh # emit DIR FILE...

# Starts the agent with every probe attached; waits for "attached". Sets AGENT_PID.
agent_up() { # agent_up DIR TAG
	"$AGENT" trace -o json --attach "$ATTACH" $RINGOPT --output "$OUT/$1/events-$2.jsonl" \
		> /dev/null 2> "$OUT/$1/agent-$2.log" &
	AGENT_PID=$!
	i=0
	# "ready", not "attached": the start-up goes on after the probes attach (XFS's report
	# channels, the stream's set-up, then the heap trim and the drop of start-up pages).
	while [ $i -lt 1200 ]; do
		grep -q "notify: ready" "$OUT/$1/agent-$2.log" 2>/dev/null && { agent_settle; return 0; }
		kill -0 $AGENT_PID 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	echo "@@NOTIFY-WARN bench: agent did not start: $(tail -n 3 "$OUT/$1/agent-$2.log")"
	return 1
}

# Until a process's CPU time stops moving (what follows its ready line is over), at most 10 s.
settle() { # settle PID
	prev=-1
	j=0
	while [ $j -lt 50 ]; do
		now=$(cpu_ns "$1")
		[ "$now" = "$prev" ] && return 0
		prev=$now
		sleep 0.2
		j=$((j + 1))
	done
}
agent_settle() { settle $AGENT_PID; }

# A process's time on a CPU so far, all threads (schedstat, ns; under -icount, instructions).
cpu_ns() { # cpu_ns PID
	cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {print s + 0}'
}
agent_cpu_ns() { cpu_ns $AGENT_PID; }

# A process's context switches so far (voluntary and not, all threads): its wakeups.
switches() { # switches PID
	cat /proc/"$1"/task/*/status 2>/dev/null |
		awk '/^(non)?voluntary_ctxt_switches:/ {s += $2} END {print s + 0}'
}
agent_switches() { switches $AGENT_PID; }

agent_down() {
	kill -INT $AGENT_PID 2>/dev/null
	wait $AGENT_PID
}

bench_mount() {
	D=bench-mount
	mkdir -p "$OUT/$D"
	echo "@@NOTIFY-SCENARIO-BEGIN $D"
	# Every block starts from the same filesystem: a mount's cost follows the log's state (the
	# head moves with every mount; under an instruction-driven clock a 6.12 clean mount went
	# from 8 to 16 M instructions over 128 cycles, in steps), so blocks on one aging
	# filesystem differ by more than the probes do.
	fresh_fs() {
		mkfs.xfs -f -m rmapbt=1,reflink=1 $PMEM > /dev/null 2>&1 || echo "@@NOTIFY-WARN mkfs failed"
		# Some content, so the mount has an AG to read and the log something to do.
		mount -t xfs -o dax=always $PMEM /mnt
		for i in 1 2 3 4 5 6 7 8; do dd if=/dev/zero of=/mnt/f$i bs=64k count=16 2>/dev/null; done
		umount /mnt
	}
	: > "$OUT/$D/cycles.txt"
	: > "$OUT/$D/agent-cpu.txt"
	: > "$OUT/$D/bt-cpu.txt"
	# The third arm, `bpftrace`: the host's bpftrace (over virtio-9p) running lab/probecost.bt +
	# lab/startup.bt, notify's kprobe-flavour probe set with one printf record per hit, its
	# output to a file like the agent's; ready at the line its BEGIN prints (bpftrace runs BEGIN
	# once every other probe is attached).
	ARMS="none all"
	if host_usr && [ -x /host/usr/bin/bpftrace ]; then
		ARMS="none all bpftrace"
		bt_script "$D" mount.bt probecost.bt startup.bt
		# shellcheck disable=SC2086 # HOSTRUN is a command prefix
		$HOSTRUN /host/usr/bin/bpftrace --version > "$OUT/$D/bt-version.txt" 2>&1
	else
		echo "@@NOTIFY-WARN mount: no host bpftrace over 9p, the bpftrace arm is left out"
	fi
	# lab.arms=none,all: the 9p share mounted as for bpftrace, its arm left out.
	[ -n "$ARMSOPT" ] && ARMS=$ARMSOPT
	NARMS=$(echo $ARMS | wc -w)
	# Starts bpftrace; waits for its BEGIN line, then until its CPU time stops moving, as for the
	# agent. Sets BT_PID.
	bt_up() { # bt_up TAG
		# shellcheck disable=SC2086 # HOSTRUN is a command prefix
		$HOSTRUN /host/usr/bin/bpftrace "$OUT/$D/mount.bt" > "$OUT/$D/bpftrace-$1.out" \
			2> "$OUT/$D/bpftrace-$1.log" &
		BT_PID=$!
		i=0
		while [ $i -lt 3000 ]; do
			grep -q @@STARTUP-READY "$OUT/$D/bpftrace-$1.out" 2>/dev/null && { settle $BT_PID; return 0; }
			kill -0 $BT_PID 2>/dev/null || break
			sleep 0.1
			i=$((i + 1))
		done
		echo "@@NOTIFY-WARN bench: bpftrace did not attach: $(tail -n 3 "$OUT/$D/bpftrace-$1.log")"
		kill -INT $BT_PID 2>/dev/null
		wait $BT_PID
		return 1
	}
	for mode in clean recover; do
		arg=
		[ $mode = recover ] && arg=recover
		b=0
		while [ $b -lt "$ROUNDS" ]; do
			# Every arm pair A B on even blocks, B A on odd ones (an odd block runs the even
			# one's order reversed); the first arm rotates every two blocks.
			order=$(echo $ARMS $ARMS | awk -v r=$((b / 2)) -v n="$NARMS" '{for (i = 1; i <= n; i++) printf "%s ", $(i + r % n)}')
			[ $((b % 2)) -eq 1 ] && order=$(echo $order | awk '{for (i = NF; i > 0; i--) printf "%s ", $i}')
			for probes in $order; do
				fresh_fs
				if [ $probes = all ]; then
					agent_up "$D" "$mode-$b" || { b=$ROUNDS; break; }
				fi
				if [ $probes = bpftrace ]; then
					bt_up "$mode-$b" || { b=$ROUNDS; break; }
				fi
				# One warm-up cycle, not recorded: with the agent (or bpftrace) running, its
				# first events (code paged back in after the start-up drop, first allocations)
				# land here.
				benchhelp mount $PMEM /mnt 1 $arg > /dev/null
				if [ $probes = all ]; then
					a0=$(agent_cpu_ns)
					s0=$(agent_switches)
				fi
				if [ $probes = bpftrace ]; then
					a0=$(cpu_ns $BT_PID)
					s0=$(switches $BT_PID)
				fi
				benchhelp mount $PMEM /mnt "$CYCLES" $arg |
					sed "s/^/mode=$mode probes=$probes block=$b /" >> "$OUT/$D/cycles.txt"
				if [ $probes = all ]; then
					echo "mode=$mode block=$b agent_ns=$(($(agent_cpu_ns) - a0)) agent_cs=$(($(agent_switches) - s0))" >> "$OUT/$D/agent-cpu.txt"
					agent_down
				fi
				if [ $probes = bpftrace ]; then
					echo "mode=$mode block=$b bpftrace_ns=$(($(cpu_ns $BT_PID) - a0)) bpftrace_cs=$(($(switches $BT_PID) - s0))" >> "$OUT/$D/bt-cpu.txt"
					kill -INT $BT_PID 2>/dev/null
					wait $BT_PID
				fi
			done
			echo "@@NOTIFY-SAY [$D] $mode block $b done"
			b=$((b + 1))
		done
	done
	# Which programs run how often on a mount: one more `all` block per mode, untimed, with
	# kernel.bpf_stats_enabled (it adds two clock reads per program run, so never in a timed
	# block); the agent's prog fds give run_cnt and run_time_ns, /proc/kallsyms the names.
	for mode in clean recover; do
		arg=
		[ $mode = recover ] && arg=recover
		fresh_fs
		agent_up "$D" "$mode-hits" || continue
		echo 1 > /proc/sys/kernel/bpf_stats_enabled
		benchhelp mount $PMEM /mnt "$CYCLES" $arg > /dev/null
		# kallsyms read once: under TCG each read of it takes seconds.
		grep ' bpf_prog_' /proc/kallsyms > /tmp/bpfsyms
		for f in /proc/$AGENT_PID/fdinfo/*; do
			tag=$(awk '/^prog_tag:/{print $2}' "$f" 2>/dev/null)
			[ -n "$tag" ] || continue
			name=$(grep -m1 "bpf_prog_${tag}_" /tmp/bpfsyms | awk '{print $3}')
			name=${name#bpf_prog_"${tag}"_}
			echo "mode=$mode prog=${name:-$tag} $(awk '/^run_cnt:/{c=$2} /^run_time_ns:/{t=$2} END{print "run_cnt=" c " run_time_ns=" t}' "$f")"
		done >> "$OUT/$D/hits.txt"
		echo 0 > /proc/sys/kernel/bpf_stats_enabled
		agent_down
	done
	# Evidence that the probes saw the mounts: event kinds of the last agent run.
	for f in "$OUT/$D"/events-*.jsonl; do
		n=$(grep -c get_tree_exit "$f")
		echo "$(basename "$f") get_tree_exit=$n lines=$(wc -l < "$f")"
	done > "$OUT/$D/agent-events.txt"
	tail -q -n 1 "$OUT/$D"/agent-*.log > "$OUT/$D/agent-totals.txt"
	# Where the cost is: event kinds of the first agent run of each mode.
	for mode in clean recover; do
		f="$OUT/$D/events-$mode-0.jsonl"
		[ -f "$f" ] || continue
		grep -o '"kind":"[a-z_]*"' "$f" | sort | uniq -c |
			sed "s/^ *\([0-9]*\) \"kind\":\"\(.*\)\"/mode=$mode count=\1 kind=\2/"
	done > "$OUT/$D/kinds.txt"
	# bpftrace's records by kind in the first block of each mode (its exit prints its maps:
	# "@..." lines, after the block), and what it attached in every run.
	for mode in clean recover; do
		f="$OUT/$D/bpftrace-$mode-0.out"
		[ -f "$f" ] || continue
		grep -v -e '^@' -e '^Attaching' -e '^$' "$f" | awk '{print $1}' | sort | uniq -c |
			sed "s/^ *\([0-9]*\) \(.*\)/mode=$mode count=\1 kind=\2/"
	done > "$OUT/$D/bt-kinds.txt"
	for f in "$OUT/$D"/bpftrace-*.out; do
		[ -f "$f" ] || continue
		t=$(basename "$f" .out)
		echo "$t: $(grep -m1 '^Attaching' "$f") lines=$(wc -l < "$f") ready=$(grep -c @@STARTUP-READY "$f") log: $(grep -v '^$' "$OUT/$D/$t.log" | sort -u | tr '\n' ' ')"
	done > "$OUT/$D/bt-attach.txt"
	cat "$OUT/$D/bt-version.txt" >> "$OUT/$D/bt-attach.txt" 2>/dev/null
	# What CLOCK_MONOTONIC reads (under qemu -icount every clocksource follows the instruction
	# counter).
	echo "clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null) cycles_per_block=$CYCLES" > "$OUT/$D/env.txt"
	emit "$D" cycles.txt agent-cpu.txt agent-events.txt agent-totals.txt kinds.txt env.txt hits.txt \
		bt-cpu.txt bt-kinds.txt bt-attach.txt
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
	res ring "${RINGOPT#--ring-size }"
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
	# nothing drains the ring until it is over.
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

# Containment latency, kernel vs notify, N affected files (one page each, one mapper each).
#   kernel: mounted, vm.memory_failure_early_kill=1 and PR_MCE_KILL_EARLY mappers; corrupt-pfn
#           every page in turn: t0 just before the first write, end = the last mapper's SIGBUS.
#   replay: the same on fresh files, but poisoned while unmounted with the enforcing agent
#           running (journaled no_holder); the agent is stopped, the fs mounted, N mappers map
#           the pages, their sectors are listed in pmem0's bad blocks (what the platform does
#           after a machine check; on 7.x XFS's verify-media then fails there and reports),
#           then t0 = exec of `notify journal replay --policy sigbus`, end = the last
#           mapper's SIGBUS (sent by notify through a pidfd).
#   Both: XFS's own data-loss reports (FAN_FS_ERROR, 7.0+) counted from t0, and when the last
#   arrived: the kernel's at its own notification, notify's after telling XFS.
bench_contain() {
	D=bench-contain
	mkdir -p "$OUT/$D"
	echo "@@NOTIFY-SCENARIO-BEGIN $D"
	: > "$OUT/$D/rounds.txt"
	: > "$OUT/$D/replay-summary.txt"
	grep -q " /mnt " /proc/mounts && umount /mnt
	mkfs.xfs -f -m rmapbt=1,reflink=1 $PMEM > /dev/null 2>&1
	mount -t xfs -o dax=always $PMEM /mnt || echo "@@NOTIFY-WARN contain: mount failed"
	echo 1 > /proc/sys/vm/memory_failure_early_kill
	J=/tmp/contain-journal
	r=0
	while [ "$r" -lt "$ROUNDS" ]; do
		for n in $SIZES; do
			if [ $((r % 2)) -eq 0 ]; then order="kernel replay"; else order="replay kernel"; fi
			pos=0
			for m in $order; do
				dir=/mnt/$m-$r-$n
				tag=$r-$n
				echo "@@NOTIFY-SAY [$D] round $r n=$n $m"
				benchhelp mkfiles "$dir" "$n" || echo "@@NOTIFY-WARN contain: mkfiles $dir"
				sync
				if [ $m = kernel ]; then
					out=$(benchhelp contain "$dir" "$n" kernel 2>> "$OUT/$D/contain.err")
				else
					benchhelp pfns "$dir" "$n" > /tmp/pfns
					umount /mnt
					rm -f $J
					"$AGENT" agent -o json --policy sigbus --journal $J --attach "$ATTACH" \
						--metrics-addr off --output "$OUT/$D/events-$tag.jsonl" \
						> /dev/null 2> "$OUT/$D/agent-$tag.log" &
					AGENT_PID=$!
					i=0
					while [ $i -lt 1200 ]; do
						grep -q "notify: journal" "$OUT/$D/agent-$tag.log" 2>/dev/null && break
						kill -0 $AGENT_PID 2>/dev/null || break
						sleep 0.1
						i=$((i + 1))
					done
					inj=$(benchhelp inject /tmp/pfns)
					i=0
					while [ $i -lt 600 ]; do
						[ "$(grep -c '"kind":"journaled"' "$OUT/$D/events-$tag.jsonl" 2>/dev/null)" -ge "$n" ] && break
						sleep 0.1
						i=$((i + 1))
					done
					jn=$(grep -c '"kind":"journaled"' "$OUT/$D/events-$tag.jsonl" 2>/dev/null)
					echo "@@NOTIFY-SAY [$D] agent up after $i, $inj, journaled $jn"
					agent_down
					mount -t xfs -o dax=always $PMEM /mnt || echo "@@NOTIFY-WARN contain: mount failed"
					out=$(benchhelp contain "$dir" "$n" replay --list-bad -- "$AGENT" journal --journal $J replay \
						--policy sigbus 2> "$OUT/$D/replay-$tag.log")
					sig=$(grep '"kind":"enforcement"' "$OUT/$D/replay-$tag.log" | grep -c '"action":"signalled"')
					rep=$(grep -c '"kind":"replayed"' "$OUT/$D/replay-$tag.log")
					echo "round=$r n=$n $inj journaled=$jn replayed=$rep signalled=$sig" >> "$OUT/$D/replay-summary.txt"
				fi
				echo "round=$r pos=$pos $out" >> "$OUT/$D/rounds.txt"
				echo "@@NOTIFY-SAY [$D] $out"
				pos=$((pos + 1))
			done
		done
		echo "@@NOTIFY-SAY [$D] round $r done: $(tail -n 2 "$OUT/$D/rounds.txt" | tr '\n' ' ')"
		r=$((r + 1))
	done
	echo 0 > /proc/sys/vm/memory_failure_early_kill
	umount /mnt 2>/dev/null
	# The listed sectors stay listed until written through the driver.
	while read -r sec cnt; do
		dd if=/dev/zero of=$PMEM bs=512 seek="$sec" count="$cnt" oflag=direct conv=notrunc 2> /dev/null
	done < /sys/block/pmem0/badblocks
	tail -n 20 "$OUT/$D/contain.err" > "$OUT/$D/contain-err-tail.txt" 2>/dev/null
	emit "$D" rounds.txt replay-summary.txt contain-err-tail.txt replay-0-1.log
	echo "@@NOTIFY-SCENARIO-END $D"
}

# The host's /usr over virtio-9p (cargo xtask bench probe-cost shares it read-only): bpftrace
# and bpftool run from it with the host's dynamic loader and libraries. Sets HOSTRUN.
host_usr() {
	if [ -f /lab/modules-extra.list ]; then
		while read -r mod args; do
			[ -n "$mod" ] && insmod "/lib/modules/$mod" $args
		done < /lab/modules-extra.list
	fi
	mkdir -p /host/usr
	mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostusr /host/usr || return 1
	HOSTRUN="/host/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path /host/usr/lib/x86_64-linux-gnu"
}

# bt_script DIR OUT FILE...: the bpftrace scripts /lab/FILE... as one, their @NAME@ placeholders
# replaced by the offsets `notify doctor` reads from BTF (its output kept in DIR/doctor.txt), in
# $OUT/DIR/OUT.
bt_script() {
	bt_dir=$1
	bt_out=$2
	shift 2
	"$AGENT" doctor > "$OUT/$bt_dir/doctor.txt" 2>&1
	off() { awk -v f="$1" '$1 == f { print $2; exit }' "$OUT/$bt_dir/doctor.txt"; }
	for f in "$@"; do cat "/lab/$f"; done | sed \
		-e "s/@HD@/$(off dax_holder_data)/g; s/@HO@/$(off dax_holder_ops)/g" \
		-e "s/@MS@/$(off xfs_m_super)/g; s/@SF@/$(off sb_s_flags)/g" \
		-e "s/@SFI@/$(off sb_s_fs_info)/g; s/@SDEV@/$(off sb_s_dev)/g" \
		-e "s/@FCR@/$(off fc_root)/g; s/@DSB@/$(off dentry_d_sb)/g; s/@BDD@/$(off bdev_bd_dev)/g" \
		-e "s/@LMP@/$(off xlog_l_mp)/g" > "$OUT/$bt_dir/$bt_out"
}

# Per-program BPF run time of one process's programs (prog fds only: link fds name a prog_id too): "tool=T prog_id=I run_time_ns=R run_cnt=C".
prog_stats() { # prog_stats TOOL PID
	for f in /proc/$2/fdinfo/*; do
		awk -v t="$1" '/^prog_id:/{id=$2} /^run_time_ns:/{rt=$2} /^run_cnt:/{rc=$2}
			END{if (id != "" && rc != "") print "tool=" t " prog_id=" id " run_time_ns=" rt " run_cnt=" rc}' "$f" 2>/dev/null
	done
}

# BPF run time per hit (kernel.bpf_stats_enabled=1) of notify's programs in both flavours and of
# a bpftrace script doing the same probes and records (lab/probecost.bt), all three attached at
# once so every hit runs all of them: a round is mount+umount cycles and a storm of poisoned
# pages; stats are read after every round.
bench_probe() {
	D=bench-probe
	mkdir -p "$OUT/$D"
	echo "@@NOTIFY-SCENARIO-BEGIN $D"
	host_usr || echo "@@NOTIFY-WARN probe: no host /usr over 9p"
	echo 1 > /proc/sys/kernel/bpf_stats_enabled
	bt_script "$D" probecost.bt probecost.bt
	$HOSTRUN /host/usr/bin/bpftrace --version > "$OUT/$D/versions.txt" 2>&1
	mkfs.xfs -f -m rmapbt=1,reflink=1 $PMEM > /dev/null 2>&1
	mount -t xfs -o dax=always $PMEM /mnt
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		dd if=/dev/zero of=/mnt/storm$r bs=4k count="$PAGES" 2>/dev/null
		r=$((r + 1))
	done
	sync
	umount /mnt
	echo 0 > /proc/sys/vm/memory_failure_early_kill
	"$AGENT" trace -o json --attach kprobe --output "$OUT/$D/events-kprobe.jsonl" > /dev/null 2> "$OUT/$D/agent-kprobe.log" &
	PK=$!
	"$AGENT" trace -o json --attach fentry --output "$OUT/$D/events-fentry.jsonl" > /dev/null 2> "$OUT/$D/agent-fentry.log" &
	PF=$!
	$HOSTRUN /host/usr/bin/bpftrace "$OUT/$D/probecost.bt" > "$OUT/$D/bpftrace.out" 2> "$OUT/$D/bpftrace.log" &
	PB=$!
	i=0
	while [ $i -lt 1800 ]; do
		grep -q attached "$OUT/$D/agent-kprobe.log" && grep -q attached "$OUT/$D/agent-fentry.log" &&
			grep -q Attaching "$OUT/$D/bpftrace.out" && break
		sleep 0.1
		i=$((i + 1))
	done
	sleep 2
	echo "@@NOTIFY-SAY [$D] attached after $((i / 10)) s: $(head -n 1 "$OUT/$D/bpftrace.out") $(tail -n 2 "$OUT/$D/bpftrace.log")"
	{ $HOSTRUN /host/usr/sbin/bpftool -j prog show; echo; } > "$OUT/$D/progs.json" 2>&1
	{ $HOSTRUN /host/usr/sbin/bpftool -j perf; echo; } > "$OUT/$D/perf.json" 2>&1
	echo "pids kprobe=$PK fentry=$PF bpftrace=$PB" > "$OUT/$D/stats.txt"
	for t in "kprobe $PK" "fentry $PF" "bpftrace $PB"; do prog_stats $t; done | sed 's/^/round=-1 /' >> "$OUT/$D/stats.txt"
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		benchhelp mount $PMEM /mnt "$CYCLES" > /dev/null
		mount -t xfs -o dax=always $PMEM /mnt
		benchhelp storm /mnt/storm$r "$PAGES" > /dev/null
		umount /mnt
		for t in "kprobe $PK" "fentry $PF" "bpftrace $PB"; do prog_stats $t; done | sed "s/^/round=$r /" >> "$OUT/$D/stats.txt"
		echo "@@NOTIFY-SAY [$D] round $r done"
		r=$((r + 1))
	done
	kill -INT $PK $PF $PB
	wait $PK $PF $PB
	tail -n 1 "$OUT/$D/agent-kprobe.log" "$OUT/$D/agent-fentry.log" > "$OUT/$D/agent-totals.txt"
	wc -l "$OUT/$D/bpftrace.out" "$OUT/$D/events-kprobe.jsonl" "$OUT/$D/events-fentry.jsonl" > "$OUT/$D/lines.txt"
	tail -n 5 "$OUT/$D/bpftrace.log" >> "$OUT/$D/lines.txt"
	emit "$D" stats.txt progs.json perf.json versions.txt agent-totals.txt lines.txt probecost.bt
	echo "@@NOTIFY-SCENARIO-END $D"
}

# Who maps this file among $PAGES processes (cargo xtask bench mappers-vm): the host's mappers
# bench binary (/bin/mappers-bench) forks the children and times notify's scan by the kernel's
# task_vma iterator, its /proc scan, and the host's fuser (over 9p, through the host's loader),
# alternated, $ROUNDS rounds. Its @@BENCH lines go to rows.txt.
bench_mappers() {
	D=bench-mappers
	mkdir -p "$OUT/$D"
	echo "@@NOTIFY-SCENARIO-BEGIN $D"
	host_usr || echo "@@NOTIFY-WARN mappers: no host /usr over 9p"
	$HOSTRUN /host/usr/bin/fuser -V 2>&1 | head -n 1 > "$OUT/$D/versions.txt"
	echo "@@NOTIFY-SAY [$D] $PAGES children, $ROUNDS rounds; free: $(free -m | awk '/Mem:/{print $4}') MiB"
	NOTIFY_BENCH_RUN="$HOSTRUN" NOTIFY_BENCH_FUSER=/host/usr/bin/fuser \
		NOTIFY_BENCH_VARIANTS=notify_kernel,fuser_file,notify_proc \
		NOTIFY_BENCH_CHILDREN="$PAGES" NOTIFY_BENCH_ROUNDS="$ROUNDS" RUST_LOG=info \
		/bin/mappers-bench > "$OUT/$D/rows.txt" 2> "$OUT/$D/bench.log"
	echo "rc=$?" >> "$OUT/$D/bench.log"
	echo "@@NOTIFY-SAY [$D] $(tail -n 3 "$OUT/$D/bench.log" | tr '\n' ' ')"
	emit "$D" rows.txt bench.log versions.txt
	echo "@@NOTIFY-SCENARIO-END $D"
}

# Start-up latency (cargo xtask bench startup): exec -> ready, timed by `benchhelp startup`, for
# the agent (every probe attached and the start-up replay of a journal holding one pending
# record done: its "notify: ready" line) and for bpftrace attaching the same probe set
# (lab/probecost.bt + lab/startup.bt: its BEGIN line), alternated in one boot, the order
# rotated every round; /bin/notify-baseline (an older build, when the image has one) is a third
# variant. One untimed warm-up run of each first (page cache, 9p). Lines in rounds.txt:
# "round=R pos=P variant=V ready_ns=N found=F status=S"; the agent's NOTIFY_TIMINGS lines in
# phases.txt prefixed with "round=R variant=V".
bench_startup() {
	D=bench-startup
	mkdir -p "$OUT/$D"
	echo "@@NOTIFY-SCENARIO-BEGIN $D"
	: > "$OUT/$D/rounds.txt"
	: > "$OUT/$D/phases.txt"
	host_usr || echo "@@NOTIFY-WARN startup: no host /usr over 9p"
	bt_script "$D" startup.bt probecost.bt startup.bt
	$HOSTRUN /host/usr/bin/bpftrace --version > "$OUT/$D/versions.txt" 2>&1
	VARIANTS="notify bpftrace"
	[ -x /bin/notify-baseline ] && VARIANTS="notify baseline bpftrace"
	# A journal with one pending record: a notification XFS cannot take (no holder: unmounted),
	# journaled by a seed agent; every timed agent starts from a copy of it, mounted, so its
	# start-up replay resolves the record's owner.
	mkfs.xfs -f -m rmapbt=1,reflink=1 $PMEM > /dev/null 2>&1
	mount -t xfs -o dax=always $PMEM /mnt
	benchhelp mkfiles /mnt/victim 1 > /dev/null
	sync
	benchhelp pfns /mnt/victim 1 > /tmp/pfns
	umount /mnt
	J0=/tmp/startup-journal0
	rm -f $J0
	"$AGENT" agent -o json --journal $J0 --attach "$ATTACH" --metrics-addr off \
		--output "$OUT/$D/events-seed.jsonl" > /dev/null 2> "$OUT/$D/agent-seed.log" &
	AGENT_PID=$!
	i=0
	while [ $i -lt 1800 ] && ! grep -q "notify: ready" "$OUT/$D/agent-seed.log"; do
		sleep 0.1
		i=$((i + 1))
	done
	inj=$(benchhelp inject /tmp/pfns)
	i=0
	while [ $i -lt 600 ] && ! grep -q '"kind":"journaled"' "$OUT/$D/events-seed.jsonl"; do
		sleep 0.1
		i=$((i + 1))
	done
	agent_down
	echo "@@NOTIFY-SAY [$D] seed journal: $inj; $(grep -c '"kind":"journaled"' "$OUT/$D/events-seed.jsonl") journaled"
	mount -t xfs -o dax=always $PMEM /mnt || echo "@@NOTIFY-WARN startup: mount failed"
	run_variant() { # run_variant V TAG
		case $1 in
		notify | baseline)
			bin=$AGENT
			[ "$1" = baseline ] && bin=/bin/notify-baseline
			cp $J0 /tmp/startup-journal
			NOTIFY_TIMINGS=1 benchhelp startup "$OUT/$D/log-$2.txt" "notify: ready" -- \
				"$bin" agent -o json --journal /tmp/startup-journal --attach "$ATTACH" \
				--metrics-addr off --output "$OUT/$D/events-$2.jsonl"
			;;
		bpftrace)
			# shellcheck disable=SC2086 # HOSTRUN is a command prefix
			benchhelp startup "$OUT/$D/log-$2.txt" "@@STARTUP-READY" -- \
				$HOSTRUN /host/usr/bin/bpftrace "$OUT/$D/startup.bt"
			;;
		esac
	}
	for v in $VARIANTS; do
		echo "@@NOTIFY-SAY [$D] warm-up $v: $(run_variant $v warm-$v)"
	done
	n=$(echo $VARIANTS | wc -w)
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		# Rotate the order by the round number.
		order=$(echo $VARIANTS $VARIANTS | tr ' ' '\n' | tail -n +$((r % n + 1)) | head -n $n)
		pos=0
		for v in $order; do
			out=$(run_variant $v $r-$v)
			echo "round=$r pos=$pos variant=$v $out" >> "$OUT/$D/rounds.txt"
			grep "notify: timing:" "$OUT/$D/log-$r-$v.txt" | sed "s/^/round=$r variant=$v /" >> "$OUT/$D/phases.txt"
			pos=$((pos + 1))
		done
		echo "@@NOTIFY-SAY [$D] round $r: $(grep "^round=$r " "$OUT/$D/rounds.txt" | sed 's/round=[0-9]* //' | tr '\n' ';')"
		r=$((r + 1))
	done
	umount /mnt 2>/dev/null
	for v in $VARIANTS; do cp "$OUT/$D/log-0-$v.txt" "$OUT/$D/log-first-$v.txt" 2>/dev/null; done
	emit "$D" rounds.txt phases.txt versions.txt startup.bt agent-seed.log $(for v in $VARIANTS; do echo log-first-$v.txt; done)
	echo "@@NOTIFY-SCENARIO-END $D"
}

# Footprint (cargo xtask bench footprint): RSS, CPU and wakeups of one tracer at a time, idle
# and under a storm, for notify agent, notify trace, rasdaemon -f -r and bpftrace running
# lab/probecost.bt (rasdaemon and bpftrace from the host's /usr over virtio-9p). Per round, the
# tools run in turn (order rotated every round): start, wait until ready, settle, then an idle
# window of lab.idle seconds, then a storm of lab.pages poisoned pages on a fresh file, then
# stop. Lines "round=R pos=P tool=T phase=... key=value ...".
foot_snap() { # foot_snap PID -> "ticks= rss_kb= hwm_kb= threads= ctxt= vol= nonvol="
	t=$(sed 's/.*) //' /proc/$1/stat | awk '{print $12 + $13}')
	m=$(awk '/^VmRSS/{r=$2} /^VmHWM/{h=$2} END{print "rss_kb=" r " hwm_kb=" h}' /proc/$1/status)
	c=$(cat /proc/$1/task/*/status 2>/dev/null | awk '/^voluntary_ctxt_switches/{v+=$2} /^nonvoluntary_ctxt_switches/{n+=$2} /^Pid:/{k++} END{print "threads=" k " ctxt=" v + n " vol=" v " nonvol=" n}')
	echo "ticks=$t $m $c"
}
foot_kbuf() { # foot_kbuf PID TOOL -> "kbuf_kb=": the kernel-side buffers the tool holds
	# rasdaemon: its tracing instance's ring buffers (all CPUs); the BPF tools: the memlock
	# (the kernel's own accounting) of every BPF map they hold an fd of, each map once
	case $2 in
	rasdaemon) echo "kbuf_kb=$(cat /sys/kernel/tracing/instances/rasdaemon/buffer_total_size_kb 2>/dev/null || echo 0)" ;;
	*) cat /proc/$1/fdinfo/* 2>/dev/null | awk '/^pos:/{m = 0} /^map_type:/{m = 1} /^memlock:/{if (m) ml = $2}
		/^map_id:/{if (m) k[$2] = ml} END{for (i in k) s += k[i]; printf "kbuf_kb=%d\n", s / 1024}' ;;
	esac
}
foot_tasks() { # foot_tasks PID: "tid comm vol nonvol" per thread
	for d in /proc/$1/task/*; do
		echo "${d##*/} $(tr ' ' '_' < $d/comm) $(awk '/^voluntary_ctxt/{v=$2} /^nonvoluntary_ctxt/{n=$2} END{print v, n}' $d/status)"
	done 2>/dev/null
}
foot_smaps() { # foot_smaps PID: the rollup, then every mapping holding >= 16 kB of RSS
	grep -E '^(Rss|Anonymous|AnonHugePages|Shared_Clean|Private_Clean|Private_Dirty):' /proc/$1/smaps_rollup 2>/dev/null | tr -s ' ' | tr '\n' ' '
	echo
	awk '/^[0-9a-f]+-[0-9a-f]+ /{n = $6; if (n == "") n = "[anon]"; p = $2; r = $1}
		/^Rss:/{rss = $2}
		/^AnonHugePages:/{if (rss >= 16) printf "%7d kB rss %6d kB thp %s %s %s\n", rss, $2, p, r, n}' /proc/$1/smaps 2>/dev/null
}
foot_quiet() { # foot_quiet PID FILE: until FILE's size and PID's CPU ticks stop changing (1 s)
	last=x
	i=0
	while [ $i -lt 600 ]; do
		now="$(cat "$2" 2>/dev/null | wc -c) $(sed 's/.*) //' /proc/$1/stat | awk '{print $12 + $13}')"
		[ "$now" = "$last" ] && return 0
		last=$now
		sleep 1
		i=$((i + 1))
	done
}
bench_foot() {
	D=bench-foot
	mkdir -p "$OUT/$D"
	echo "@@NOTIFY-SCENARIO-BEGIN $D"
	IDLE=30
	TOOLS="agent trace rasdaemon bpftrace"
	for kv in $(cat /proc/cmdline); do
		case "$kv" in
		lab.idle=*) IDLE=${kv#lab.idle=} ;;
		lab.tools=*) TOOLS=$(echo "${kv#lab.tools=}" | tr ',' ' ') ;;
		esac
	done
	NT=$(echo $TOOLS | wc -w)
	host_usr || echo "@@NOTIFY-WARN foot: no host /usr over 9p"
	ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null
	bt_script "$D" probecost.bt probecost.bt
	{
		$HOSTRUN /host/usr/bin/bpftrace --version
		$HOSTRUN /host/usr/sbin/rasdaemon --version
	} > "$OUT/$D/versions.txt" 2>&1
	echo "clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100) idle_s=$IDLE pages=$PAGES" > "$OUT/$D/rounds.txt"
	grep -q " /mnt " /proc/mounts && umount /mnt
	mkfs.xfs -f -m rmapbt=1,reflink=1 $PMEM > /dev/null 2>&1
	mount -t xfs -o dax=always $PMEM /mnt || echo "@@NOTIFY-WARN foot: mount failed"
	mb=$(((PAGES * 4096 + 1048575) / 1048576))
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		for t in $TOOLS; do dd if=/dev/zero of=/mnt/storm-$t-$r bs=1M count=$mb 2>/dev/null; done
		r=$((r + 1))
	done
	sync
	echo 0 > /proc/sys/vm/memory_failure_early_kill
	mkdir -p /var/lib/rasdaemon
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		# rotate the order by one tool every round
		order=$(echo $TOOLS $TOOLS | awk -v r=$r -v n=$NT '{for (i = 1; i <= n; i++) printf "%s ", $(i + r % n)}')
		pos=0
		for t in $order; do
			tag=$t-$r
			log="$OUT/$D/$tag.log"
			case $t in
			agent)
				rm -f /tmp/foot-journal
				out=/tmp/foot-$tag.jsonl
				t0=$(cut -d' ' -f1 /proc/uptime)
				"$AGENT" agent -o json --attach "$ATTACH" --journal /tmp/foot-journal --output $out \
					> /dev/null 2> "$log" &
				P=$! ;;
			trace)
				out=/tmp/foot-$tag.jsonl
				t0=$(cut -d' ' -f1 /proc/uptime)
				"$AGENT" trace -o json --attach "$ATTACH" --output $out > /dev/null 2> "$log" &
				P=$! ;;
			rasdaemon)
				rm -f /var/lib/rasdaemon/ras-mc_event.db
				out=/var/lib/rasdaemon/ras-mc_event.db
				t0=$(cut -d' ' -f1 /proc/uptime)
				$HOSTRUN /host/usr/sbin/rasdaemon -f -r > "$log" 2>&1 &
				P=$! ;;
			bpftrace)
				out=/tmp/foot-$tag.out
				t0=$(cut -d' ' -f1 /proc/uptime)
				$HOSTRUN /host/usr/bin/bpftrace "$OUT/$D/probecost.bt" > $out 2> "$log" &
				P=$! ;;
			esac
			i=0
			ok=0
			while [ $i -lt 3000 ]; do
				kill -0 $P 2>/dev/null || break
				case $t in
				agent | trace) grep -q -e attached -e "notify: journal" "$log" && ok=1 ;;
				# at its poll loop once it holds the per-CPU trace_pipe_raw fds (its log is
				# partly buffered); the settle below covers the db set-up that follows
				rasdaemon) ls -l /proc/$P/fd 2>/dev/null | grep -q trace_pipe_raw && ok=1 ;;
				bpftrace) grep -q Attaching $out 2>/dev/null && ok=1 ;;
				esac
				[ $ok = 1 ] && break
				sleep 0.1
				i=$((i + 1))
			done
			t1=$(cut -d' ' -f1 /proc/uptime)
			if [ $ok != 1 ]; then
				kill -0 $P 2>/dev/null || echo "@@NOTIFY-WARN foot: $t exited: $(wait $P; echo rc=$?)"
				echo "@@NOTIFY-WARN foot: $t did not come up: $(tail -n 3 "$log" | tr '\n' ' ')"
				ls /sys/kernel/tracing/instances/ > "$OUT/$D/$tag-instances.txt" 2>&1
				echo "round=$r pos=$pos tool=$t phase=failed" >> "$OUT/$D/rounds.txt"
				kill -INT $P 2>/dev/null
				wait $P
				pos=$((pos + 1))
				continue
			fi
			[ $t = rasdaemon ] && grep -H . /sys/kernel/tracing/instances/*/events/ras/memory_failure_event/enable \
				> "$OUT/$D/$tag-instances.txt" 2>&1
			# settle: until its CPU and output stop moving, at least 5 s
			sleep 5
			foot_quiet $P $out
			st="ready_s=$(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}')"
			echo "round=$r pos=$pos tool=$t phase=start $st $(foot_snap $P)" >> "$OUT/$D/rounds.txt"
			foot_tasks $P > "$OUT/$D/tasks-$tag-0.txt"
			echo "round=$r pos=$pos tool=$t phase=idle0 $(foot_snap $P)" >> "$OUT/$D/rounds.txt"
			sleep "$IDLE"
			echo "round=$r pos=$pos tool=$t phase=idle1 $(foot_snap $P) $(foot_kbuf $P $t)" >> "$OUT/$D/rounds.txt"
			foot_tasks $P > "$OUT/$D/tasks-$tag-1.txt"
			[ $r = 0 ] && foot_smaps $P > "$OUT/$D/smaps-$tag.txt"
			echo 5 > /proc/$P/clear_refs
			b0=$(cat $out 2>/dev/null | wc -c)
			echo "round=$r pos=$pos tool=$t phase=storm0 $(foot_snap $P)" >> "$OUT/$D/rounds.txt"
			s=$(benchhelp storm /mnt/storm-$tag "$PAGES")
			foot_quiet $P $out
			echo "round=$r pos=$pos tool=$t phase=storm1 $(foot_snap $P) out_bytes=$(($(cat $out 2>/dev/null | wc -c) - b0)) $s" >> "$OUT/$D/rounds.txt"
			kill -INT $P
			wait $P
			echo "@@NOTIFY-SAY [$D] round $r $t: $(grep "tool=$t phase=storm1" "$OUT/$D/rounds.txt" | tail -n 1)"
			pos=$((pos + 1))
		done
		r=$((r + 1))
	done
	umount /mnt 2>/dev/null
	for f in "$OUT/$D"/tasks-*.txt; do echo "== ${f##*/}"; cat "$f"; done > "$OUT/$D/tasks.txt"
	for f in "$OUT/$D"/smaps-*.txt; do echo "== ${f##*/}"; cat "$f"; done > "$OUT/$D/smaps.txt"
	for f in "$OUT/$D"/*-0.log "$OUT/$D"/*-instances.txt; do
		[ -f "$f" ] || continue
		echo "== ${f##*/}"
		case $f in *rasdaemon*) cat "$f" ;; *) tail -n 5 "$f" ;; esac
	done > "$OUT/$D/logs.txt"
	emit "$D" rounds.txt tasks.txt logs.txt versions.txt smaps.txt
	echo "@@NOTIFY-SCENARIO-END $D"
}

echo "@@NOTIFY-PLAN bench=$BENCH attach=$ATTACH rounds=$ROUNDS cycles=$CYCLES pages=$PAGES sizes=$SIZES"
for b in $(echo "$BENCH" | tr ',' ' '); do
	case "$b" in
	mount) bench_mount ;;
	storm) bench_storm ;;
	contain) bench_contain ;;
	probe) bench_probe ;;
	foot) bench_foot ;;
	startup) bench_startup ;;
	mappers) bench_mappers ;;
	*) echo "@@NOTIFY-WARN unknown bench $b" ;;
	esac
done
