#!/bin/sh
# The notify lab scenarios, run inside the guest by /init.
#
# Kernel command line knobs:
#   lab.attach=kprobe|fentry|auto|none   how to run the agent (none: no agent)
#   lab.scenarios=a,b,c                  subset/order (default: all)
#   lab.delay_ms=N                       dm-delay per log I/O (premature)
#   lab.rust_log=FILTER                  RUST_LOG for the agent (its stderr: agent.log)
#
# Per scenario S the host gets these files back (under target/lab/<k>/<flavour>/S/):
#   result.txt   key=value facts the script measured (exit codes, pfns, ...)
#   events.jsonl the agent's JSON lines (if the agent ran)
#   agent.log    the agent's stderr
#   dmesg.txt    the kernel log of that scenario only (dmesg -c between)
#   log.txt      the script's narration (also echoed live on the console)
# Transport: "@@NOTIFY-FILE-BEGIN S/name" ... "@@NOTIFY-FILE-END S/name".

PMEM=/dev/pmem0
BASE_PFN=0x40000
ATTACH=kprobe
SCENARIOS=no_holder,mounted,remount,premature,replay,healthmon,ext4,tell,redrive,journal_faults,removal
DELAY_MS=200
for kv in $(cat /proc/cmdline); do
	case "$kv" in
	lab.attach=*) ATTACH=${kv#lab.attach=} ;;
	lab.scenarios=*) SCENARIOS=${kv#lab.scenarios=} ;;
	lab.delay_ms=*) DELAY_MS=${kv#lab.delay_ms=} ;;
	lab.rust_log=*) export RUST_LOG=${kv#lab.rust_log=} ;;
	esac
done
AGENT=/bin/notify
# XFS's own channels (verify-media, fserror, healthmon) are Linux 7.0+: waits for what they
# report are skipped before that (the checks expect their absence there).
KMAJ=$(uname -r | cut -d. -f1)
[ "$ATTACH" = none ] && AGENT=
[ -n "$AGENT" ] && [ ! -x "$AGENT" ] && AGENT=

OUT=/tmp/out
mkdir -p $OUT

say() {
	printf '%s\n' "$*" | while IFS= read -r l; do
		echo "@@NOTIFY-SAY [$SC] $l"
		echo "$l" >> "$OUT/$SC/log.txt"
	done
}
res() { echo "$1=$2" >> "$OUT/$SC/result.txt"; }

. /lab/transport.sh # emit DIR FILE...

agent_start() {
	AGENT_PID=
	if [ -z "$AGENT" ]; then
		res agent missing
		return
	fi
	# TRACE_EXTRA: more trace flags for this scenario (word-split on purpose).
	# shellcheck disable=SC2086
	"$AGENT" trace -o json --attach "$ATTACH" --output "$OUT/$SC/events.jsonl" $TRACE_EXTRA \
		--session "$OUT/$SC/session.json" \
		> "$OUT/$SC/agent.stdout" 2> "$OUT/$SC/agent.log" &
	AGENT_PID=$!
	# Wait for the attach report ("attached" on stderr); 120 s at most under TCG.
	i=0
	while [ $i -lt 1200 ]; do
		grep -q attached "$OUT/$SC/agent.log" 2>/dev/null && break
		kill -0 $AGENT_PID 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 $AGENT_PID 2>/dev/null; then
		res agent running
		res agent_start_ds $i
		# "attached" is the probes' report; XFS's own channels are set up after it (the
		# fserror marks, and the health monitors of --healthmon), and a poison in between
		# reaches no listener. Their lines come on every kernel (or say why not).
		wait_lines "$OUT/$SC/agent.log" 'notify: fserror:' 1
		case "$TRACE_EXTRA" in
		*--healthmon*) wait_lines "$OUT/$SC/agent.log" 'notify: healthmon:' 1 ;;
		esac
		say "agent up after $((i / 10)).$((i % 10)) s ($ATTACH)"
	else
		wait $AGENT_PID
		res agent died
		res agent_exit $?
		say "agent died at startup: $(tail -n 3 "$OUT/$SC/agent.log")"
		AGENT_PID=
	fi
}

agent_stop() {
	[ -n "$AGENT_PID" ] || return
	sleep 0.5 # let the ring buffer drain
	kill -INT $AGENT_PID
	i=0
	while kill -0 $AGENT_PID 2>/dev/null && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 $AGENT_PID 2>/dev/null; then
		say "agent ignored SIGINT for 30 s, killing it"
		kill -KILL $AGENT_PID
	fi
	wait $AGENT_PID
	res agent_exit $?
	AGENT_PID=
}

begin() {
	SC=$1
	mkdir -p "$OUT/$SC"
	: > "$OUT/$SC/result.txt"
	dmesg -c > /dev/null
	echo "@@NOTIFY-SCENARIO-BEGIN $SC"
	res scenario "$SC"
	res kernel "$(uname -r)"
	res attach "${AGENT:+$ATTACH}"
}

end() {
	dmesg > "$OUT/$SC/dmesg.txt"
	dmesg -c > /dev/null
	emit "$SC" result.txt log.txt dmesg.txt events.jsonl agent.log agent.stdout session.json
	echo "@@NOTIFY-SCENARIO-END $SC"
}

# Write to debugfs' corrupt-pfn; records "<key>_rc" and "<key>_err".
inject() { # inject KEY PFN
	# No pfn (FIEMAP failed): never poison pfn 0, which is ordinary RAM.
	case "$2" in
	"" | 0x0 | 0)
		res "$1_rc" skipped
		say "no pfn for $1: not poisoning"
		return
		;;
	esac
	err=$(sh -c "echo $2 > /sys/kernel/debug/hwpoison/corrupt-pfn" 2>&1)
	rc=$?
	res "$1_rc" $rc
	res "$1_err" "$(echo "$err" | sed 's/.*: //' | tr ' ' _)"
	say "corrupt-pfn $2 -> rc=$rc ${err:+($err)}"
}

field() { # field KEY TEXT: value of KEY=... in TEXT
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1
}

mkfs_plain() {
	mkfs.xfs -f -m rmapbt=1,reflink=1 $PMEM > /tmp/mkfs.log 2>&1
	res mkfs_rc $?
}

# ---------------------------------------------------------------------------
sc_doctor() {
	begin doctor
	if [ -n "$AGENT" ]; then
		"$AGENT" doctor > "$OUT/$SC/doctor.txt" 2>&1
		res doctor_rc $?
	else
		echo "agent missing" > "$OUT/$SC/doctor.txt"
		res agent missing
	fi
	emit "$SC" doctor.txt
	end
}

# 3. Nothing mounted: dax_holder_notify_failure has no holder (-EOPNOTSUPP).
sc_no_holder() {
	begin no_holder
	say "Nothing is mounted on pmem0, so the dax device has no holder:"
	say "dax_holder_notify_failure() should return -EOPNOTSUPP and mm fall back."
	pfn=0x7ff00 # near the end of pmem0, never used by the other scenarios
	res pfn $pfn
	res offset $(((pfn - BASE_PFN) * 4096))
	agent_start
	say "nothing mounted; poisoning pfn $pfn"
	inject inject $pfn
	agent_stop
	end
}

# 1. Mounted: the victim poisons its own page, a bystander maps another file.
# The two mapper scans agree (a real XFS on fsdax, real mapper processes): the kernel's task_vma
# iterator (`notify resolve --scan kernel`) and /proc (`--scan proc`) name the same processes for
# page 2 of a file that two processes map (pages 0-3 and 0-2) and a third maps only in part
# (pages 0-1: not a mapper of page 2). Before the poisoning, so nothing is damaged yet. The scan
# does not depend on how the probes attach: it runs in the kprobe flavour only (CI cost).
mapper_scans() {
	[ -n "$AGENT" ] || return 0
	if [ "$ATTACH" != kprobe ]; then
		res scan_skipped "attach=$ATTACH"
		return 0
	fi
	t0=$(cut -d' ' -f1 /proc/uptime)
	out=$(victim --tag scan --physoff --page 2 /mnt/bystander 2>&1)
	off=$(field physoff "$out")
	res scan_physoff "$off"
	victim --tag m1 --page 3 --sleep 60 /mnt/bystander > /dev/null 2>&1 &
	m1=$!
	victim --tag m2 --page 2 --sleep 60 /mnt/bystander > /dev/null 2>&1 &
	m2=$!
	victim --tag m3 --page 1 --sleep 60 /mnt/bystander > /dev/null 2>&1 &
	m3=$!
	res scan_mappers "$m1,$m2"
	res scan_partial "$m3"
	sleep 0.5
	for s in kernel proc; do
		RUST_LOG=info "$AGENT" resolve --mount /mnt --offset "$off" --scan $s -o json \
			> "$OUT/$SC/scan_$s.json" 2> "$OUT/$SC/scan_$s.log"
		res "scan_${s}_rc" $?
	done
	say "mapper scans of page 2 (mappers $m1 $m2, partial $m3): kernel $(grep -c '"pid"' "$OUT/$SC/scan_kernel.json") decisions, proc $(grep -c '"pid"' "$OUT/$SC/scan_proc.json")"
	kill $m1 $m2 $m3
	wait $m1 $m2 $m3 2>/dev/null
	# What this costs a lab run (CI runs it on every kernel and flavour).
	res scan_seconds "$(awk -v a="$t0" '{ print $1 - a }' /proc/uptime)"
	emit "$SC" scan_kernel.json scan_proc.json scan_kernel.log scan_proc.log
}

sc_mounted() {
	begin mounted
	say "XFS (rmapbt, reflink) on pmem0 mounted with -o dax=always. A victim maps a"
	say "file and poisons its own page; a bystander maps another file. XFS is born:"
	say "it walks its rmap and kills the owner of the page."
	mkfs_plain
	mount -t xfs -o dax=always $PMEM /mnt
	res mount_rc $?
	dd if=/dev/zero of=/mnt/victim bs=1M count=1 2>/dev/null
	dd if=/dev/zero of=/mnt/bystander bs=1M count=1 2>/dev/null
	sync
	mapper_scans
	echo 1 > /proc/sys/vm/memory_failure_early_kill
	agent_start
	victim --tag bystander --sleep 4 /mnt/bystander > /tmp/bystander.out 2>&1 &
	bpid=$!
	sleep 0.5
	say "victim poisons page 0 of /mnt/victim (MADV_HWPOISON), early kill on"
	out=$(victim --tag victim --poison --page 0 /mnt/victim 2>&1)
	rc=$?
	say "$out"
	res victim_exit $rc
	res victim_pid "$(field pid "$out")"
	res victim_ino "$(field ino "$out")"
	res victim_sicode "$(field si_code "$out")"
	res physoff "$(field physoff "$out")"
	res pfn "$(field pfn "$out")"
	wait $bpid
	brc=$?
	say "$(cat /tmp/bystander.out)"
	res bystander_exit $brc
	res bystander_pfn "$(field pfn "$(cat /tmp/bystander.out)")"
	agent_stop
	echo 0 > /proc/sys/vm/memory_failure_early_kill
	end
}

# 4. Unmount and remount: holder_put, a fresh holder_get, and "born" again.
sc_remount() {
	begin remount
	say "Unmount (XFS releases the dax holder), mount again (a fresh holder), and"
	say "poison a page: the new mount must get the notification."
	if ! grep -q " /mnt " /proc/mounts; then
		mkfs_plain
		mount -t xfs -o dax=always $PMEM /mnt
		dd if=/dev/zero of=/mnt/victim bs=1M count=1 2>/dev/null
		sync
	fi
	agent_start
	umount /mnt
	res umount_rc $?
	say "unmounted; mounting again"
	mount -t xfs -o dax=always $PMEM /mnt
	res mount_rc $?
	out=$(victim --tag victim --poison --page 8 /mnt/victim 2>&1)
	rc=$?
	say "$out"
	res victim_exit $rc
	res victim_sicode "$(field si_code "$out")"
	res physoff "$(field physoff "$out")"
	res pfn "$(field pfn "$out")"
	agent_stop
	umount /mnt
	end
}

# 2. Premature: poison arrives while the mount is still recovering its log.
sc_premature() {
	begin premature
	say "An external log on a ram disk behind dm-delay makes the mount slow. Poison"
	say "that arrives while XFS is still mounting is dropped by XFS (-EIO)."
	grep -q " /mnt " /proc/mounts && umount /mnt
	mkfs.xfs -f -m rmapbt=1,reflink=1 -l logdev=/dev/ram0,size=64m $PMEM > /tmp/mkfs.log 2>&1
	res mkfs_rc $?
	mount -t xfs -o dax=always,logdev=/dev/ram0 $PMEM /mnt
	dd if=/dev/zero of=/mnt/pad bs=1M count=8 2>/dev/null
	dd if=/dev/zero of=/mnt/data bs=1M count=1 2>/dev/null
	sync
	out=$(victim --tag data --physoff --page 16 /mnt/data 2>&1)
	say "$out"
	pfn=$(field pfn "$out")
	res pfn "$pfn"
	res physoff "$(field physoff "$out")"
	umount /mnt
	echo "0 $(blockdev --getsz /dev/ram0) delay /dev/ram0 0 $DELAY_MS" | dmsetup create slowlog
	dmsetup mknodes
	agent_start
	say "mounting with the log behind dm-delay ${DELAY_MS} ms/IO"
	t0=$(cut -d' ' -f1 /proc/uptime)
	(mount -t xfs -o dax=always,logdev=/dev/mapper/slowlog $PMEM /mnt; echo $? > /tmp/mount.rc) &
	mpid=$!
	sleep 1.5
	if grep -q " /mnt " /proc/mounts; then
		res mounted_before_inject yes
	fi
	inject inject "$pfn"
	wait $mpid
	t1=$(cut -d' ' -f1 /proc/uptime)
	res mount_rc "$(cat /tmp/mount.rc)"
	res mount_secs "$(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}')"
	say "mount finished rc=$(cat /tmp/mount.rc) after $(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}') s"
	agent_stop
	umount /mnt
	dmsetup remove slowlog
	end
}

# 5. The enforcing agent end to end: notifications the kernel dropped (no
# holder, premature) are journaled and replayed once the filesystem is ready;
# a kill -9 of the agent between the notification and the mount loses
# nothing; the restarted agent SIGBUSes exactly the process mapping the
# damaged page, and a second restart replays nothing. Reflinked data names
# both owners; an AG header hit is reported, never acted on.
JOURNAL=/var/lib/notify/journal

# ragent_start NAME EVENTS: `notify agent` (policy sigbus) writing its JSON
# lines to EVENTS and stderr to NAME.log; RA_PID is its pid (empty without
# agent). Records NAME=running|died|missing.
ragent_start() {
	RA_PID=
	if [ -z "$AGENT" ]; then
		res "$1" missing
		return
	fi
	# The session file is named after the events file: events_X.jsonl -> session_X.json.
	# RA_EXTRA: more agent flags for this scenario (word-split on purpose).
	# shellcheck disable=SC2086
	"$AGENT" agent -o json --verbose --policy sigbus --journal $JOURNAL --attach "$ATTACH" \
		--metrics-addr off --output "$OUT/$SC/$2" $RA_EXTRA \
		--session "$OUT/$SC/$(echo "$2" | sed 's/^events/session/; s/\.jsonl$/.json/')" \
		> "$OUT/$SC/$1.stdout" 2> "$OUT/$SC/$1.log" &
	RA_PID=$!
	# "journal ...: N record(s)" comes after attaching, right before the
	# replay of pending records whose filesystem is mounted.
	i=0
	while [ $i -lt 1200 ]; do
		grep -q "notify: journal" "$OUT/$SC/$1.log" 2>/dev/null && break
		kill -0 $RA_PID 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 $RA_PID 2>/dev/null; then
		res "$1" running
		res "$1_start_ds" $i
		say "$1 up after $((i / 10)).$((i % 10)) s ($ATTACH): $(grep 'notify: journal' "$OUT/$SC/$1.log")"
	else
		wait $RA_PID
		res "$1" died
		res "$1_exit" $?
		say "$1 died at startup: $(tail -n 3 "$OUT/$SC/$1.log")"
		RA_PID=
	fi
}

# ragent_stop NAME: SIGINT, wait; records NAME_exit.
ragent_stop() {
	[ -n "$RA_PID" ] || return
	sleep 0.5
	kill -INT $RA_PID
	i=0
	while kill -0 $RA_PID 2>/dev/null && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -0 $RA_PID 2>/dev/null && kill -KILL $RA_PID
	wait $RA_PID
	res "$1_exit" $?
	RA_PID=
}

# wait_lines FILE PATTERN N: until FILE has N lines matching PATTERN (30 s at
# most); records nothing, says how many it saw.
wait_lines() {
	[ -n "$AGENT" ] || return
	i=0
	while [ $i -lt 300 ]; do
		[ "$(grep -c "$2" "$1" 2>/dev/null)" -ge "$3" ] 2>/dev/null && return 0
		sleep 0.1
		i=$((i + 1))
	done
	say "waited 30 s for $3 x $2 in $(basename "$1"): $(grep -c "$2" "$1" 2>/dev/null)"
	return 1
}

# journal_list NAME: `notify journal list` as table (NAME.txt) and JSON (NAME.jsonl).
journal_list() {
	[ -n "$AGENT" ] || return
	"$AGENT" journal --journal $JOURNAL list > "$OUT/$SC/$1.txt" 2>&1
	res "$1_rc" $?
	"$AGENT" journal --journal $JOURNAL list -o json > "$OUT/$SC/$1.jsonl" 2>> "$OUT/$SC/$1.txt"
	say "notify journal list:"
	say "$(cat "$OUT/$SC/$1.txt")"
}

# where KEY FILE PAGE: FIEMAP of page PAGE of FILE into KEY_ino/_physoff/_pfn.
where() {
	out=$(victim --tag "$1" --physoff --page "$3" "$2" 2>&1)
	res "$1_ino" "$(field ino "$out")"
	res "$1_page" "$3"
	res "$1_physoff" "$(field physoff "$out")"
	res "$1_pfn" "$(field pfn "$out")"
	say "$out"
	eval "PFN_$1=$(field pfn "$out")"
}

sc_replay() {
	begin replay
	say "The enforcing agent (notify agent --policy sigbus): notifications XFS never"
	say "got (nothing mounted; mount not done) are journaled, replayed once the"
	say "filesystem is ready, survive a kill -9 of the agent, and end in a SIGBUS"
	say "to exactly the process mapping the damaged page."
	grep -q " /mnt " /proc/mounts && umount /mnt
	rm -rf /var/lib/notify
	mkfs.xfs -f -m rmapbt=1,reflink=1 -l logdev=/dev/ram0,size=64m $PMEM > /tmp/mkfs.log 2>&1
	res mkfs_rc $?
	mount -t xfs -o dax=always,logdev=/dev/ram0 $PMEM /mnt
	res mount_rc $?
	for f in a b c d; do
		dd if=/dev/zero of=/mnt/$f bs=1M count=1 2>/dev/null
	done
	dd if=/dev/zero of=/mnt/r1 bs=64k count=1 2>/dev/null
	xfs_io -f -c "reflink /mnt/r1" /mnt/r2 > /tmp/reflink.log 2>&1
	res reflink_rc $?
	sync
	where a /mnt/a 3     # poisoned while unmounted
	where b /mnt/b 16    # poisoned while mounting
	where c /mnt/c 5     # poisoned unmounted, mapped by the victim at the restart
	where d /mnt/d 5     # the bystander's file
	where r1 /mnt/r1 2   # a reflinked extent: two owners
	where r2 /mnt/r2 2
	res meta_pfn $BASE_PFN # AG 0 headers
	umount /mnt
	res umount_rc $?

	say "-- 1. nothing mounted: poison page 3 of /mnt/a (no holder)"
	ragent_start agent events.jsonl
	AGENT1=$RA_PID
	inject inject_a "$PFN_a"
	wait_lines "$OUT/$SC/events.jsonl" '"kind":"journaled"' 1

	say "-- 2. mounting with the log behind dm-delay: poison page 16 of /mnt/b"
	echo "0 $(blockdev --getsz /dev/ram0) delay /dev/ram0 0 $DELAY_MS" | dmsetup create slowlog
	dmsetup mknodes
	(mount -t xfs -o dax=always,logdev=/dev/mapper/slowlog $PMEM /mnt; echo $? > /tmp/mount.rc) &
	mpid=$!
	sleep 1.5
	grep -q " /mnt " /proc/mounts && res mounted_before_inject yes
	inject inject_b "$PFN_b"
	wait $mpid
	res slow_mount_rc "$(cat /tmp/mount.rc)"

	say "-- 3. mounted: the agent replays both at the ready edge"
	wait_lines "$OUT/$SC/events.jsonl" '"kind":"replayed"' 2
	umount /mnt
	dmsetup remove slowlog

	say "-- 4. unmounted: poison page 5 of /mnt/c, then kill -9 the agent"
	inject inject_c "$PFN_c"
	wait_lines "$OUT/$SC/events.jsonl" '"kind":"journaled"' 3
	if [ -n "$AGENT1" ]; then
		kill -KILL "$AGENT1"
		wait "$AGENT1"
		res agent_exit $?
	fi
	journal_list journal_killed
	mount -t xfs -o dax=always,logdev=/dev/ram0 $PMEM /mnt
	res mount2_rc $?
	if [ -n "$AGENT" ]; then
		victim --tag bystander --default-sigbus --page 5 --sleep 120 /mnt/d > /tmp/bystander.out 2>&1 &
		bpid=$!
		victim --tag victim --default-sigbus --page 5 --sleep 90 /mnt/c > /tmp/victim.out 2>&1 &
		vpid=$!
		res victim_pid $vpid
		res bystander_pid $bpid
		sleep 1
		say "victim $vpid maps page 5 of /mnt/c, bystander $bpid maps /mnt/d; restarting the agent"
		ragent_start agent_restart events_restart.jsonl
		wait $vpid
		res victim_exit $?
		say "victim: $(cat /tmp/victim.out | tr '\n' ' ')"
		# Still running once the victim is dead: the replay has passed it over.
		# (It has SIGBUS's default action too: a SIGBUS would have killed it.)
		kill -0 $bpid 2>/dev/null && res bystander_alive_after_replay yes
		kill -TERM $bpid
		wait $bpid
		res bystander_exit $?
		say "bystander: $(cat /tmp/bystander.out | tr '\n' ' ')"
	fi

	say "-- 5, 6. unmounted: poison page 2 of the reflinked /mnt/r1 and the AG 0 header"
	umount /mnt
	inject inject_r "$PFN_r1"
	inject inject_meta $BASE_PFN
	wait_lines "$OUT/$SC/events_restart.jsonl" '"kind":"journaled"' 2
	mount -t xfs -o dax=always,logdev=/dev/ram0 $PMEM /mnt
	res mount3_rc $?
	wait_lines "$OUT/$SC/events_restart.jsonl" '"kind":"replayed"' 3
	ragent_stop agent_restart

	say "-- a second restart replays nothing (a sentinel maps the page again)"
	if [ -n "$AGENT" ]; then
		victim --tag sentinel --default-sigbus --page 5 --sleep 120 /mnt/c > /tmp/sentinel.out 2>&1 &
		spid=$!
		res sentinel_pid $spid
		sleep 0.5
		ragent_start agent_again events_again.jsonl
		sleep 2
		ragent_stop agent_again
		kill -0 $spid 2>/dev/null && res sentinel_alive_after_restart yes
		kill -TERM $spid
		wait $spid
		res sentinel_exit $?
		say "sentinel: $(cat /tmp/sentinel.out | tr '\n' ' ')"
	fi
	journal_list journal_end
	umount /mnt
	for f in events events_restart events_again; do
		[ -f "$OUT/$SC/$f.jsonl" ] || continue
		say "$f.jsonl: $(grep -c . "$OUT/$SC/$f.jsonl") lines, $(grep -c '"kind":"replayed"' "$OUT/$SC/$f.jsonl") replayed"
	done
	emit "$SC" events_restart.jsonl agent_restart.log events_again.jsonl agent_again.log \
		session_restart.json session_again.json \
		journal_killed.txt journal_killed.jsonl journal_end.txt journal_end.jsonl
	end
}

# 6. A mount test suite (lab/mount_suite.sh) under `notify record`: the session file comes
# back and the host renders it with `notify report`. Alongside, the fleet agent
# (`notify agent --metrics-addr`) whose /healthz and /metrics the suite fetches.
# (Not in the default SCENARIOS list of this script: the host passes lab.scenarios.)
METRICS_ADDR=127.0.0.1:9464
sc_mount_suite() {
	begin mount_suite
	say "A mount test suite (clean mount, dirty log recovery, premature poison, failed mounts"
	say "of a corrupt filesystem, unmount) recorded by notify record, with the fleet agent's"
	say "metrics endpoint alongside."
	grep -q " /mnt " /proc/mounts && umount /mnt
	if [ -z "$AGENT" ]; then
		res agent missing
		say "no agent: the suite runs unrecorded (kernel-side facts only)"
		SUITE_OUT="$OUT/$SC" SUITE_DELAY_MS=$DELAY_MS sh /lab/mount_suite.sh
		res suite_exit $?
		end
		return
	fi
	res agent present
	# The initramfs leaves loopback down: the endpoint listens on 127.0.0.1.
	ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
	rm -f /tmp/j
	"$AGENT" agent -o json --verbose --journal /tmp/j --attach "$ATTACH" \
		--metrics-addr $METRICS_ADDR --output "$OUT/$SC/agent_events.jsonl" \
		> "$OUT/$SC/metrics_agent.stdout" 2> "$OUT/$SC/metrics_agent.log" &
	MA_PID=$!
	i=0
	while [ $i -lt 1200 ]; do
		grep -q "notify: journal" "$OUT/$SC/metrics_agent.log" 2>/dev/null && break
		kill -0 $MA_PID 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 $MA_PID 2>/dev/null; then
		res metrics_agent running
		res metrics_agent_start_ds $i
		say "fleet agent up after $((i / 10)).$((i % 10)) s: $(grep 'notify: metrics' "$OUT/$SC/metrics_agent.log")"
		wget -S -O "$OUT/$SC/healthz.body" "http://$METRICS_ADDR/healthz" > "$OUT/$SC/healthz.txt" 2>&1
		res healthz_rc $?
		cat "$OUT/$SC/healthz.body" >> "$OUT/$SC/healthz.txt" 2>/dev/null
		wget -q -O "$OUT/$SC/metrics_start.txt" "http://$METRICS_ADDR/metrics"
		res metrics_start_rc $?
		export SUITE_METRICS="http://$METRICS_ADDR"
	else
		wait $MA_PID
		res metrics_agent died
		res metrics_agent_exit $?
		say "fleet agent died at startup: $(tail -n 3 "$OUT/$SC/metrics_agent.log")"
		MA_PID=
	fi
	t0=$(cut -d' ' -f1 /proc/uptime)
	SUITE_OUT="$OUT/$SC" SUITE_DELAY_MS=$DELAY_MS \
		"$AGENT" record --session "$OUT/$SC/session.json" --attach "$ATTACH" --fail-on lost \
		-- sh /lab/mount_suite.sh 2> "$OUT/$SC/record.log"
	rc=$?
	unset SUITE_METRICS
	res record_exit $rc
	res record_secs "$(echo "$t0 $(cut -d' ' -f1 /proc/uptime)" | awk '{printf "%.1f", $2 - $1}')"
	say "notify record exited $rc: $(grep -v attached "$OUT/$SC/record.log" | tail -n 2)"
	if [ -n "$MA_PID" ]; then
		wget -q -O "$OUT/$SC/metrics_end.txt" "http://$METRICS_ADDR/metrics"
		res metrics_end_rc $?
		sleep 0.5
		kill -INT $MA_PID
		i=0
		while kill -0 $MA_PID 2>/dev/null && [ $i -lt 300 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -0 $MA_PID 2>/dev/null && kill -KILL $MA_PID
		wait $MA_PID
		res metrics_agent_exit $?
	fi
	grep -q " /mnt " /proc/mounts && umount /mnt
	emit "$SC" record.log healthz.txt metrics_start.txt metrics_delivered.txt \
		metrics_premature.txt metrics_replayed.txt metrics_end.txt agent_events.jsonl \
		metrics_agent.log
	end
}

# 7. Telling the filesystem (Linux 7.0+: XFS_IOC_VERIFY_MEDIA, FAN_FS_ERROR). What the
# platform does after a real machine check, the lab does by hand: list the bad sectors in
# /sys/block/pmem0/badblocks (the pmem driver then refuses DAX faults and reads of them).
# Poison the kernel dropped (nothing mounted; mount not done) and poison only listed (no
# notification at all) are journaled; at the mount the agent tells XFS, which reports each
# owner itself, a file never opened included; a range listed while mounted is found by the
# rescan and told the same way. A new mapper of a listed page gets the pmem driver's SIGBUS,
# a mapper of a clean page nothing. Older kernels: XFS cannot be told, and the replayed
# record says so. At the end a write through the driver clears the listed sectors (the e820
# bus has no clear-error command: the driver treats the write as the repair).
badblock() { # badblock KEY: list page KEY's sectors (from `where`) as bad
	eval "po=\$PHYS_$1"
	sec=$((po / 512))
	echo "$sec 8" > /sys/block/pmem0/badblocks
	res "$1_bad_rc" $?
	res "$1_sector" $sec
	LISTED="$LISTED $sec"
	say "listed sectors $sec+8 (page $1) in /sys/block/pmem0/badblocks"
}

sc_tell() {
	begin tell
	say "Poison the kernel dropped, and poison it was never told of, told to XFS"
	say "at the mount (XFS_IOC_VERIFY_MEDIA): XFS reports every owner itself."
	grep -q " /mnt " /proc/mounts && umount /mnt
	rm -rf /var/lib/notify
	LISTED=
	mkfs.xfs -f -m rmapbt=1,reflink=1 -l logdev=/dev/ram0,size=64m $PMEM > /tmp/mkfs.log 2>&1
	res mkfs_rc $?
	mount -t xfs -o dax=always,logdev=/dev/ram0 $PMEM /mnt
	res mount_rc $?
	for f in s t u v w; do
		dd if=/dev/zero of=/mnt/$f bs=1M count=1 2>/dev/null
	done
	sync
	where s /mnt/s 3 # poisoned while unmounted (no holder), then listed
	where t /mnt/t 6 # poisoned while mounting (premature), then listed
	where u /mnt/u 2 # only listed while unmounted: no notification, nobody opens it
	where v /mnt/v 4 # listed while mounted: the rescan finds it
	where w /mnt/w 1 # never damaged: its mapper lives throughout
	for k in s t u v w; do
		eval "PHYS_$k=\$(( $(grep "^${k}_physoff=" "$OUT/$SC/result.txt" | cut -d= -f2) ))"
	done
	umount /mnt

	say "-- 1. unmounted: poison page 3 of /mnt/s and list it; list page 2 of /mnt/u"
	RA_EXTRA="--badblocks-rescan 2"
	ragent_start agent events.jsonl
	RA_EXTRA=
	inject inject_s "$PFN_s"
	# The notification first: listed before the agent journals it, the rescan could
	# claim the range as a bad-block record.
	wait_lines "$OUT/$SC/events.jsonl" '"kind":"journaled"' 1
	badblock s
	badblock u
	wait_lines "$OUT/$SC/events.jsonl" '"kind":"journaled"' 2

	say "-- 2. mounting with the log behind dm-delay: poison page 6 of /mnt/t and list it"
	echo "0 $(blockdev --getsz /dev/ram0) delay /dev/ram0 0 $DELAY_MS" | dmsetup create slowlog
	dmsetup mknodes
	(mount -t xfs -o dax=always,logdev=/dev/mapper/slowlog $PMEM /mnt; echo $? > /tmp/mount.rc) &
	mpid=$!
	sleep 1.5
	grep -q " /mnt " /proc/mounts && res mounted_before_inject yes
	inject inject_t "$PFN_t"
	wait_lines "$OUT/$SC/events.jsonl" '"kind":"journaled"' 3
	badblock t
	wait $mpid
	res mount2_rc "$(cat /tmp/mount.rc)"
	journal_list journal_unmounted

	say "-- 3. mounted: the agent tells XFS of all three ranges"
	wait_lines "$OUT/$SC/events.jsonl" '"kind":"replayed"' 3
	[ "$KMAJ" -ge 7 ] && wait_lines "$OUT/$SC/events.jsonl" '"kind":"xfs_reported"' 3
	victim --tag bystander --page 1 --sleep 30 /mnt/w > /tmp/bystander.out 2>&1 &
	bpid=$!
	res bystander_pid $bpid

	say "-- 4. a new mapper of page 3 of /mnt/s: the pmem driver refuses the fault"
	out=$(victim --tag mapper --page 3 --sleep 2 /mnt/s 2>&1)
	res mapper_exit $?
	res mapper_pid "$(field pid "$out")"
	res mapper_sicode "$(field si_code "$out")"
	say "$out"
	dd if=/mnt/u of=/dev/null bs=4096 skip=2 count=1 2> /tmp/dd.err
	res read_u_rc $?
	say "reading page 2 of /mnt/u: $(tail -n 1 /tmp/dd.err)"

	say "-- 5. mounted: list page 4 of /mnt/v; the rescan (2 s) journals and tells it"
	badblock v
	wait_lines "$OUT/$SC/events.jsonl" '"kind":"replayed"' 4
	[ "$KMAJ" -ge 7 ] && wait_lines "$OUT/$SC/events.jsonl" '"kind":"xfs_reported"' 4
	wait $bpid
	res bystander_exit $?
	say "bystander: $(tr '\n' ' ' < /tmp/bystander.out)"

	say "-- 6. shut the filesystem down (xfs_io shutdown): XFS reports that too"
	xfs_io -x -c shutdown /mnt > /tmp/shutdown.log 2>&1
	res shutdown_rc $?
	sleep 1
	ragent_stop agent
	umount /mnt
	res umount_rc $?
	dmsetup remove slowlog
	journal_list journal_end
	res badblocks_listed "$(tr '\n' ',' < /sys/block/pmem0/badblocks)"
	for sec in $LISTED; do
		dd if=/dev/zero of=$PMEM bs=4096 seek=$((sec / 8)) count=1 oflag=direct conv=notrunc \
			2> /tmp/dd.err
		rc=$?
		res "clear_${sec}_rc" $rc
		say "dd zeros over sectors $sec+8: rc=$rc $(tr '\n' ' ' < /tmp/dd.err)"
	done
	res badblocks_end "$(tr '\n' ',' < /sys/block/pmem0/badblocks)"
	say "bad blocks after writing the listed sectors: $(cat /sys/block/pmem0/badblocks)"
	emit "$SC" journal_unmounted.txt journal_unmounted.jsonl journal_end.txt journal_end.jsonl
	end
}

# 8. Healthmon: XFS (7.0+) has one health monitor per filesystem. Held by another client
# (benchhelp holdmon stands in for xfs_healer), notify reports who holds it and takes
# nothing; free, `notify trace --healthmon` holds it and streams XFS's health records for
# a poisoned page of a mounted file (a media error, its data loss). Older kernels: doctor
# and the agent say the kernel has none.
sc_healthmon() {
	begin healthmon
	say "XFS's health monitor: reported as held when another client has it; held and"
	say "streamed by notify trace --healthmon when free."
	grep -q " /mnt " /proc/mounts && umount /mnt
	mkfs_plain
	mount -t xfs -o dax=always $PMEM /mnt
	res mount_rc $?
	dd if=/dev/zero of=/mnt/h bs=1M count=1 2>/dev/null
	sync
	where h /mnt/h 6
	benchhelp holdmon /mnt 600 > /tmp/holdmon.out 2>&1 &
	hpid=$!
	res holder_pid $hpid
	sleep 1
	say "holder: $(cat /tmp/holdmon.out)"
	if [ -n "$AGENT" ]; then
		"$AGENT" doctor > "$OUT/$SC/doctor_held.txt" 2>&1
		res doctor_held_rc $?
		say "$(grep -i healthmon "$OUT/$SC/doctor_held.txt")"
		"$AGENT" trace -o json --healthmon --attach "$ATTACH" \
			--output "$OUT/$SC/events_held.jsonl" > /dev/null 2> "$OUT/$SC/agent_held.log" &
		apid=$!
		if [ "$KMAJ" -ge 7 ]; then
			wait_lines "$OUT/$SC/events_held.jsonl" '"kind":"health"' 1
		else
			wait_lines "$OUT/$SC/agent_held.log" 'attached' 1
			sleep 1
		fi
		kill -INT $apid
		wait $apid
		res agent_held_exit $?
	fi
	kill -TERM $hpid
	wait $hpid
	res holder_exit $?
	TRACE_EXTRA=--healthmon
	agent_start
	TRACE_EXTRA=
	inject inject_h "$PFN_h"
	[ "$KMAJ" -ge 7 ] && wait_lines "$OUT/$SC/events.jsonl" '"what":"media_error"' 1
	xfs_io -x -c shutdown /mnt > /tmp/shutdown.log 2>&1
	res shutdown_rc $?
	[ "$KMAJ" -ge 7 ] && wait_lines "$OUT/$SC/events.jsonl" '"what":"shutdown"' 1
	agent_stop
	umount /mnt
	emit "$SC" doctor_held.txt events_held.jsonl agent_held.log
	end
}

# 9. ext4 on pmem (-o dax) never registers as the dax holder: a poisoned page of it is a
# "no holder" notification that no XFS will ever take. The agent journals it (nothing is
# dropped silently) and closes the record at once, saying why, instead of keeping it pending.
sc_ext4() {
	begin ext4
	say "ext4 -o dax on pmem0: no holder, ever. The record is closed, not kept pending."
	grep -q " /mnt " /proc/mounts && umount /mnt
	rm -rf /var/lib/notify
	mkfs.ext4 -F -q -b 4096 $PMEM > /tmp/mkfs.log 2>&1
	res mkfs_rc $?
	mount -t ext4 -o dax $PMEM /mnt
	res mount_rc $?
	dd if=/dev/zero of=/mnt/e bs=1M count=1 2>/dev/null
	sync
	where e /mnt/e 2
	ragent_start agent events.jsonl
	inject inject_e "$PFN_e"
	wait_lines "$OUT/$SC/events.jsonl" '"kind":"closed"' 1
	ragent_stop agent
	journal_list journal_end
	umount /mnt
	res umount_rc $?
	emit "$SC" journal_end.txt journal_end.jsonl
	end
}

# 13. The journal's own storage fails: the journal lives on ext4 over a device-mapper device
# that is switched to the `error` target (every read and write fails, as a dying disk's would)
# while the agent runs. A record stored before the fault survives it; a notification that
# arrives during it is reported as not stored (journal_write_failed, and LOST on stderr if it
# still is not stored when the agent stops), never dropped silently.
# dm_switch KEY TABLE: jdev's table becomes TABLE at once (no filesystem freeze first: a
# device does not wait for its filesystem before it fails); records KEY_rc, says any error.
dm_switch() {
	out=$( (dmsetup suspend --nolockfs jdev && echo "$2" | dmsetup load jdev &&
		dmsetup resume jdev) 2>&1)
	rc=$?
	res "$1_rc" $rc
	[ $rc -eq 0 ] || say "dmsetup ($1): $out"
}

sc_journal_faults() {
	begin journal_faults
	say "The journal's device fails (dm error target): what was stored stays, what could"
	say "not be stored is said."
	grep -q " /mnt " /proc/mounts && umount /mnt
	rm -rf /var/lib/notify
	mkfs_plain
	mount -t xfs -o dax=always $PMEM /mnt
	res mount_rc $?
	for f in a b; do
		dd if=/dev/zero of=/mnt/$f bs=1M count=1 2>/dev/null
	done
	sync
	where a /mnt/a 3 # poisoned while the journal's device works
	where b /mnt/b 4 # poisoned while it fails
	umount /mnt
	sz=$(blockdev --getsz /dev/ram1)
	echo "0 $sz linear /dev/ram1 0" | dmsetup create jdev
	dmsetup mknodes
	mkfs.ext4 -F -q /dev/mapper/jdev > /tmp/jmkfs.log 2>&1
	res jmkfs_rc $?
	mkdir -p /jfs
	mount -t ext4 /dev/mapper/jdev /jfs
	res jmount_rc $?
	JOURNAL=/jfs/journal
	ragent_start agent events.jsonl
	say "-- the device works: poison page 3 of /mnt/a (nothing mounted: no holder)"
	inject inject_a "$PFN_a"
	wait_lines "$OUT/$SC/events.jsonl" '"kind":"journaled"' 1
	say "-- the device fails every I/O from now on: poison page 4 of /mnt/b"
	dm_switch dm_error "0 $sz error"
	inject inject_b "$PFN_b"
	wait_lines "$OUT/$SC/events.jsonl" '"kind":"journal_write_failed"' 1
	# A few retries against the failing device (once a second).
	sleep 3
	say "-- the device is back: its data as it was"
	dm_switch dm_linear "0 $sz linear /dev/ram1 0"
	sleep 3
	ragent_stop agent
	say "agent: $(grep -E 'NOT stored|LOST|journal' "$OUT/$SC/agent.log" | tail -n 4)"
	# What the journal's filesystem kept, mounted again from the device.
	umount /jfs
	res jumount_rc $?
	mount -t ext4 /dev/mapper/jdev /jfs
	res jremount_rc $?
	journal_list journal_end
	umount /jfs
	dmsetup remove jdev
	JOURNAL=/var/lib/notify/journal
	emit "$SC" journal_end.txt journal_end.jsonl agent.log
	end
}

# 14. Crash loop (opt-in: `cargo xtask vm-test --kernel 6.12 --attach kprobe --scenarios
# crash_loop`; about 50 agent starts of TCG). The agent is killed with SIGKILL at a random point
# again and again: CRASH_N times while notifications arrive (one poisoned page per agent, killed
# 0-1.9 s after the poison), then CRASH_N times while its start-up replay signals the processes
# mapping those pages (killed 0-2.9 s after it opened the journal). After every kill the journal
# is listed; the host checks that it always reads, never loses a record the agent acknowledged
# (a `journaled` line), and that no process was signalled twice or wrongly.
CRASH_N=25
ids_of() { # ids_of FILE KIND: the `id`s of FILE's KIND records, comma-separated
	grep "\"kind\":\"$2\"" "$1" 2>/dev/null | grep -o '"id":[0-9]*' | cut -d: -f2 | tr '\n' , | sed 's/,$//'
}
crash_kill() { # crash_kill K: SIGKILL the agent, then list the journal as kill K saw it
	if [ -n "$RA_PID" ]; then
		kill -KILL "$RA_PID"
		wait "$RA_PID"
		res "kill_${1}_exit" $?
	fi
	RA_PID=
	"$AGENT" journal --journal $JOURNAL list -o json > /tmp/jl.jsonl 2> /tmp/jl.err
	res "kill_${1}_list_rc" $?
	res "kill_${1}_listed" "$(grep -o '^{"id":[0-9]*' /tmp/jl.jsonl | cut -d: -f2 | tr '\n' , | sed 's/,$//')"
	res "kill_${1}_pending" "$(grep -c '"state":"pending"' /tmp/jl.jsonl)"
}
sc_crash_loop() {
	begin crash_loop
	say "The agent killed with SIGKILL at random points, $CRASH_N times while notifications"
	say "arrive and $CRASH_N times while its replay signals the mappers."
	grep -q " /mnt " /proc/mounts && umount /mnt
	rm -rf /var/lib/notify
	if [ -z "$AGENT" ]; then
		res agent missing
		end
		return
	fi
	mkfs_plain
	mount -t xfs -o dax=always $PMEM /mnt
	res mount_rc $?
	cl_i=1
	while [ $cl_i -le $CRASH_N ]; do
		dd if=/dev/zero of=/mnt/f$cl_i bs=64k count=1 2>/dev/null
		cl_i=$((cl_i + 1))
	done
	sync
	cl_i=1
	while [ $cl_i -le $CRASH_N ]; do
		where f$cl_i /mnt/f$cl_i 2 > /dev/null
		cl_i=$((cl_i + 1))
	done
	umount /mnt
	res crash_n $CRASH_N
	cl_k=0
	say "-- arrivals: one agent per poisoned page, killed at a random point after it"
	cl_i=1
	while [ $cl_i -le $CRASH_N ]; do
		cl_k=$((cl_k + 1))
		ragent_start agent_$cl_k events_$cl_k.jsonl > /dev/null
		eval "pfn=\$PFN_f$cl_i"
		inject "inject_f$cl_i" "$pfn" > /dev/null
		d=$((RANDOM % 2)).$((RANDOM % 10))
		res "kill_${cl_k}_delay" "$d"
		sleep "$d"
		crash_kill $cl_k
		# Counted after the kill: everything this agent acknowledged before it died.
		res "kill_${cl_k}_acked" "$(ids_of "$OUT/$SC/events_$cl_k.jsonl" journaled)"
		cl_i=$((cl_i + 1))
	done
	say "-- replays: mounted, a victim maps each poisoned page and a bystander the pages before it"
	mount -t xfs -o dax=always $PMEM /mnt
	res mount2_rc $?
	victims=
	bystanders=
	cl_i=1
	while [ $cl_i -le $CRASH_N ]; do
		victim --tag v$cl_i --default-sigbus --page 2 --sleep 900 /mnt/f$cl_i > /dev/null 2>&1 &
		victims="$victims${victims:+,}$!"
		# victim maps its file from offset 0 through page N: the bystander maps pages 0-1,
		# the same file but not the damaged page 2 (page 3 would map it too).
		victim --tag b$cl_i --default-sigbus --page 1 --sleep 900 /mnt/f$cl_i > /dev/null 2>&1 &
		bystanders="$bystanders${bystanders:+,}$!"
		cl_i=$((cl_i + 1))
	done
	res victims "$victims"
	res bystanders "$bystanders"
	sleep 2
	cl_j=0
	while [ $cl_j -lt $CRASH_N ]; do
		cl_j=$((cl_j + 1))
		cl_k=$((cl_k + 1))
		ragent_start agent_$cl_k events_$cl_k.jsonl > /dev/null
		d=$((RANDOM % 3)).$((RANDOM % 10))
		res "kill_${cl_k}_delay" "$d"
		sleep "$d"
		crash_kill $cl_k
		res "kill_${cl_k}_acked" "$(ids_of "$OUT/$SC/events_$cl_k.jsonl" journaled)"
		res "kill_${cl_k}_signalled" "$(grep '"kind":"enforcement"' "$OUT/$SC/events_$cl_k.jsonl" 2>/dev/null | grep '"action":"signalled"' | grep -o '"pid":[0-9]*' | cut -d: -f2 | tr '\n' , | sed 's/,$//')"
	done
	res kills $cl_k
	say "-- a last agent, stopped cleanly, finishes what is left"
	ragent_start agent_last events_last.jsonl > /dev/null
	sleep 5
	res last_signalled "$(grep '"kind":"enforcement"' "$OUT/$SC/events_last.jsonl" 2>/dev/null | grep '"action":"signalled"' | grep -o '"pid":[0-9]*' | cut -d: -f2 | tr '\n' , | sed 's/,$//')"
	ragent_stop agent_last
	journal_list journal_end > /dev/null
	dead=
	alive=
	for p in $(echo "$victims,$bystanders" | tr ',' ' '); do
		if kill -0 "$p" 2>/dev/null; then
			alive="$alive${alive:+,}$p"
			kill -TERM "$p"
		fi
		wait "$p"
		st=$?
		[ $st -eq 135 ] && dead="$dead${dead:+,}$p"
	done
	res died_of_sigbus "$dead"
	res alive_at_end "$alive"
	umount /mnt
	say "$cl_k kills; died of SIGBUS: $dead; alive at the end: $alive"
	emit "$SC" journal_end.txt journal_end.jsonl
	end
}

# 11. The opt-in kernel re-drive (`notify agent --redrive`): a page dropped while nothing was
# mounted, listed bad, is written to hard_offline_page once the filesystem is ready, so
# memory_failure() runs again into XFS, which kills the early-kill process mapping it
# (BUS_MCEERR_AO). A dropped page the platform never listed is refused, and so is a second
# re-drive on the same mount.
sc_redrive() {
	begin redrive
	say "notify agent --redrive: XFS's own kill for a dropped page, refused where unsafe."
	grep -q " /mnt " /proc/mounts && umount /mnt
	rm -rf /var/lib/notify
	LISTED=
	mkfs_plain
	mount -t xfs -o dax=always $PMEM /mnt
	res mount_rc $?
	for f in a b; do
		dd if=/dev/zero of=/mnt/$f bs=1M count=1 2>/dev/null
	done
	sync
	where a /mnt/a 3 # dropped, listed, mapped by the victim: re-driven
	where b /mnt/b 2 # dropped, never listed: refused
	PHYS_a=$(($(grep "^a_physoff=" "$OUT/$SC/result.txt" | cut -d= -f2)))
	umount /mnt
	ragent_start agent events.jsonl
	inject inject_a "$PFN_a"
	wait_lines "$OUT/$SC/events.jsonl" '"kind":"journaled"' 1
	inject inject_b "$PFN_b"
	wait_lines "$OUT/$SC/events.jsonl" '"kind":"journaled"' 2
	ragent_stop agent
	say "-- mount with the agent down; the victim maps page 3 of /mnt/a (early kill), then it is listed"
	mount -t xfs -o dax=always $PMEM /mnt
	res mount2_rc $?
	victim --tag victim --early --page 3 --sleep 90 /mnt/a > /tmp/victim.out 2>&1 &
	vpid=$!
	res victim_pid $vpid
	sleep 1
	badblock a
	RA_EXTRA=--redrive
	ragent_start agent_redrive events_redrive.jsonl
	wait $vpid
	res victim_exit $?
	say "victim: $(tr '\n' ' ' < /tmp/victim.out)"
	res victim_sicode "$(field si_code "$(cat /tmp/victim.out)")"
	wait_lines "$OUT/$SC/events_redrive.jsonl" '"kind":"redrive_refused"' 1
	ragent_stop agent_redrive
	say "-- the agent again, same mount: a second re-drive is refused"
	ragent_start agent_again events_again.jsonl
	RA_EXTRA=
	wait_lines "$OUT/$SC/events_again.jsonl" '"kind":"redrive_refused"' 2
	ragent_stop agent_again
	umount /mnt
	for sec in $LISTED; do
		dd if=/dev/zero of=$PMEM bs=4096 seek=$((sec / 8)) count=1 oflag=direct conv=notrunc \
			2> /dev/null
	done
	res badblocks_end "$(tr '\n' ',' < /sys/block/pmem0/badblocks)"
	journal_list journal_end
	emit "$SC" events_redrive.jsonl agent_redrive.log events_again.jsonl agent_again.log \
		journal_end.txt journal_end.jsonl
	end
}

# 10. Removal: unbinding the namespace while XFS is mounted on it. The kernel tells the
# holder the device is going away (6.12+: MF_MEM_PRE_REMOVE over the whole device; 6.1: the
# same range with no flags); XFS shuts down. That is not poison: the agent says so and
# journals nothing. The namespace is bound again for whatever runs next.
ND_PMEM=/sys/bus/nd/drivers/nd_pmem
sc_removal() {
	begin removal
	say "Unbind namespace0.0 under a mounted XFS: a removal, never journaled."
	grep -q " /mnt " /proc/mounts && umount /mnt
	rm -rf /var/lib/notify
	mkfs_plain
	mount -t xfs -o dax=always $PMEM /mnt
	res mount_rc $?
	dd if=/dev/zero of=/mnt/r bs=1M count=1 2>/dev/null
	sync
	ns=$(basename "$(readlink -f /sys/block/pmem0/device)")
	res namespace "$ns"
	RA_EXTRA="--badblocks-rescan 2"
	ragent_start agent events.jsonl
	RA_EXTRA=
	# In the background with a watchdog: if the kernel never finishes the unbind, the
	# blocked tasks' stacks go to dmesg (sysrq w) and the scenario says so.
	(echo "$ns" > $ND_PMEM/unbind; echo $? > /tmp/unbind.rc) &
	upid=$!
	i=0
	while kill -0 $upid 2>/dev/null && [ $i -lt 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 $upid 2>/dev/null; then
		res unbind_hung yes
		say "the unbind has not returned after 60 s (the kernel's own hang; pmem0 stays"
		say "half-removed and the power-off may hang on its device lock); blocked tasks:"
		echo 1 > /proc/sys/kernel/sysrq
		echo w > /proc/sysrq-trigger
		sleep 1
		# The agent may be stuck in the kernel too: no wait for it (kill -9 is all it gets).
		[ -n "$RA_PID" ] && kill -KILL $RA_PID
		RA_PID=
		end
		return
	fi
	res unbind_rc "$(cat /tmp/unbind.rc)"
	[ -e /sys/block/pmem0 ] || res pmem_gone yes
	wait_lines "$OUT/$SC/events.jsonl" '"kind":"device_removal"' 1
	umount /mnt
	res umount_rc $?
	echo "$ns" > $ND_PMEM/bind
	res bind_rc $?
	i=0
	while [ ! -b $PMEM ] && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ -b $PMEM ] && res pmem_back yes
	say "after unbind and bind: $(ls /dev/pmem* 2>&1)"
	ragent_stop agent
	journal_list journal_end
	emit "$SC" journal_end.txt journal_end.jsonl
	end
}

echo "@@NOTIFY-PLAN attach=${AGENT:+$ATTACH} scenarios=$SCENARIOS agent=${AGENT:-missing}"
SC=boot
mkdir -p $OUT/boot
dmesg > $OUT/boot/dmesg.txt
dmesg -c > /dev/null
ls /dev/pmem* /dev/ram* > $OUT/boot/devices.txt 2>&1
emit boot dmesg.txt devices.txt
sc_doctor
for s in $(echo "$SCENARIOS" | tr ',' ' '); do
	case "$s" in
	no_holder | mounted | remount | premature | replay | mount_suite | tell | healthmon | ext4 | redrive | journal_faults | crash_loop | removal) "sc_$s" ;;
	# Self-test of the harness, never in the defaults: a guest kernel panic mid-run, which
	# vm-test must report with the panic lines, boot once more, and fail on the second death.
	selftest_panic)
		echo "@@NOTIFY-SCENARIO-BEGIN $s"
		echo 1 > /proc/sys/kernel/sysrq
		echo c > /proc/sysrq-trigger
		;;
	*) echo "@@NOTIFY-WARN unknown scenario $s" ;;
	esac
done
