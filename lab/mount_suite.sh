#!/bin/sh
# A small mount test suite, run by the mount_suite scenario (lab/scenarios.sh) as
#   notify record --session $SUITE_OUT/session.json --attach A --fail-on lost -- sh /lab/mount_suite.sh
# Sub-tests, each on pmem0 (XFS, rmapbt, -o dax=always):
#   clean     mkfs, mount, a victim poisons its own page (a delivered notification), umount
#   recovery  mount, write, `xfs_io -x -c "shutdown -f"` (log left dirty), umount, mount again:
#             log recovery replays it
#   corrupt   mkfs, zero the root inode: the mount fails inside xfs_mountfs; then zero the
#             superblock magic too: the mount fails earlier, reading the superblock
#   premature external log on brd behind dm-delay, corrupt-pfn while the mount is in progress
#   unmount   mount the premature sub-test's filesystem again, write, umount
# Facts go to $SUITE_OUT/result.txt as key=value, among them the pid of every mount and umount
# (mount_<key>_pid), which ties the recorded events to their sub-test. With $SUITE_METRICS
# (the fleet agent's base URL) the agent's /metrics is fetched after the delivered
# notification, while the premature mount is still running, and once it has been replayed.
# Exits 0 when every step it needed ran (the assertions are the host's); 1 on a setup failure.

PMEM=/dev/pmem0
BASE_PFN=0x40000
OUT=${SUITE_OUT:-/tmp/out/mount_suite}
METRICS=${SUITE_METRICS:-}
DELAY_MS=${SUITE_DELAY_MS:-200}
mkdir -p "$OUT"

say() {
	printf '%s\n' "$*" | while IFS= read -r l; do
		echo "@@NOTIFY-SAY [mount_suite] $l"
		echo "$l" >> "$OUT/log.txt"
	done
}
res() { echo "$1=$2" >> "$OUT/result.txt"; }
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
now() { cut -d' ' -f1 /proc/uptime; }

# mnt KEY ARGS...: mount ARGS in its own process (its pid names it in the session);
# records mount_KEY_pid and mount_KEY_rc, returns the exit code.
mnt() {
	k=$1
	shift
	mount "$@" &
	p=$!
	wait $p
	rc=$?
	res "mount_${k}_pid" $p
	res "mount_${k}_rc" $rc
	say "mount $* (pid $p) -> $rc"
	return $rc
}

# umnt KEY: umount /mnt, the same way (umount_KEY_pid, umount_KEY_rc).
umnt() {
	umount /mnt &
	p=$!
	wait $p
	rc=$?
	res "umount_${1}_pid" $p
	res "umount_${1}_rc" $rc
	say "umount /mnt (pid $p) -> $rc"
	return $rc
}

# scrape NAME: the fleet agent's /metrics into NAME.txt (nothing without $METRICS).
scrape() {
	[ -n "$METRICS" ] || return 1
	wget -q -O "$OUT/$1.txt" "$METRICS/metrics" 2> "$OUT/$1.err"
}

# metric NAME PATTERN: the value of the first sample in NAME.txt matching PATTERN.
metric() {
	grep -E "$2" "$OUT/$1.txt" 2>/dev/null | grep -v '^#' | head -n 1 | awk '{print $NF}'
}

mkfs_plain() {
	mkfs.xfs -f -m rmapbt=1,reflink=1 $PMEM > /tmp/suite-mkfs.log 2>&1
	res "mkfs_$1_rc" $?
}

t_start=$(now)
res suite_started "$t_start"
grep -q " /mnt " /proc/mounts && umount /mnt

# --- clean: mount, a delivered notification, umount -------------------------------------
say "-- clean: mkfs, mount, the victim poisons its own page, umount"
res subtest_clean begin
mkfs_plain clean
mnt clean -t xfs -o dax=always $PMEM /mnt || exit 1
dd if=/dev/zero of=/mnt/pad bs=1M count=4 2>/dev/null
dd if=/dev/zero of=/mnt/victim bs=1M count=1 2>/dev/null
sync
out=$(victim --tag victim --poison --page 40 /mnt/victim 2>&1)
rc=$?
say "$out"
res clean_victim_exit $rc
res clean_victim_sicode "$(field si_code "$out")"
res clean_pfn "$(field pfn "$out")"
res clean_physoff "$(field physoff "$out")"
if [ -n "$METRICS" ]; then
	# The agent counts the notification once its reorder window lets it through.
	i=0
	while [ $i -lt 50 ]; do
		scrape metrics_delivered && [ -n "$(metric metrics_delivered 'verdict="delivered"')" ] && break
		sleep 0.2
		i=$((i + 1))
	done
	res metrics_delivered_polls $i
fi
umnt clean

# --- recovery: leave a dirty log, mount again ---------------------------------------------
say "-- recovery: mount, write, shut down (log left dirty), umount, mount: log recovery"
res subtest_recovery begin
mnt recovery_first -t xfs -o dax=always $PMEM /mnt || exit 1
for f in 1 2 3 4 5 6 7 8; do
	echo "file $f" > /mnt/dirty$f
done
xfs_io -x -c "shutdown -f" /mnt > /tmp/suite-shutdown.log 2>&1
res shutdown_rc $?
say "xfs_io shutdown -f: $(cat /tmp/suite-shutdown.log)"
umnt recovery_first
mnt recovery -t xfs -o dax=always $PMEM /mnt || exit 1
n=$(ls /mnt | grep -c '^dirty')
res recovered_files "$n"
say "after recovery /mnt has $n of 8 dirty* files"
umnt recovery

# --- corrupt: failed mounts ------------------------------------------------------------------
say "-- corrupt: zero the root inode (fails in xfs_mountfs), then the superblock magic"
res subtest_corrupt begin
mkfs_plain corrupt
mnt corrupt_probe -t xfs -o dax=always $PMEM /mnt || exit 1
# The first inode chunk of AG 0 (512-byte units) holds the root inode, its first inode.
ino_sect=$(xfs_io -c fsmap /mnt 2>/dev/null | sed -n 's/.*\[\([0-9]*\)\.\.[0-9]*\]: inodes .*/\1/p' | head -n 1)
root_ino=$(ls -di /mnt | awk '{print $1}')
umnt corrupt_probe
res corrupt_inode_sector "$ino_sect"
res corrupt_root_ino "$root_ino"
if [ -z "$ino_sect" ]; then
	say "no inode chunk in fsmap: cannot corrupt the root inode"
	exit 1
fi
dd if=/dev/zero of=$PMEM bs=512 seek="$ino_sect" count=1 conv=notrunc 2>/dev/null
sync
mnt corrupt_inode -t xfs -o dax=always $PMEM /mnt
say "$(dmesg | grep -E 'root inode|Corruption|corruption' | tail -n 2)"
dd if=/dev/zero of=$PMEM bs=4 count=1 conv=notrunc 2>/dev/null
sync
mnt corrupt_magic -t xfs -o dax=always $PMEM /mnt
say "$(dmesg | grep -iE 'magic|superblock' | tail -n 1)"

# --- premature: poison while the mount is in progress --------------------------------------
say "-- premature: external log behind dm-delay ${DELAY_MS} ms/IO, corrupt-pfn mid-mount"
res subtest_premature begin
mkfs.xfs -f -m rmapbt=1,reflink=1 -l logdev=/dev/ram0,size=64m $PMEM > /tmp/suite-mkfs.log 2>&1
res mkfs_premature_rc $?
mnt premature_setup -t xfs -o dax=always,logdev=/dev/ram0 $PMEM /mnt || exit 1
dd if=/dev/zero of=/mnt/pad bs=1M count=12 2>/dev/null
dd if=/dev/zero of=/mnt/data bs=1M count=1 2>/dev/null
sync
out=$(victim --tag data --physoff --page 24 /mnt/data 2>&1)
say "$out"
pfn=$(field pfn "$out")
res premature_pfn "$pfn"
res premature_physoff "$(field physoff "$out")"
umnt premature_setup
echo "0 $(blockdev --getsz /dev/ram0) delay /dev/ram0 0 $DELAY_MS" | dmsetup create suitelog || exit 1
dmsetup mknodes
t0=$(now)
mount -t xfs -o dax=always,logdev=/dev/mapper/suitelog $PMEM /mnt &
mp=$!
res mount_premature_pid $mp
sleep 1.5
grep -q " /mnt " /proc/mounts && res premature_mounted_before_inject yes
err=$(sh -c "echo $pfn > /sys/kernel/debug/hwpoison/corrupt-pfn" 2>&1)
rc=$?
res premature_inject_rc $rc
res premature_inject_err "$(echo "$err" | sed 's/.*: //' | tr ' ' _)"
say "corrupt-pfn $pfn -> rc=$rc ${err:+($err)}"
if [ -n "$METRICS" ]; then
	# The dropped notification is journaled; until the mount is ready it waits for replay.
	i=0
	while [ $i -lt 40 ]; do
		scrape metrics_premature && [ "$(metric metrics_premature '^notify_journal_pending ')" = 1 ] && break
		kill -0 $mp 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	kill -0 $mp 2>/dev/null && res metrics_premature_while_mounting yes
	res metrics_premature_polls $i
fi
wait $mp
rc=$?
t1=$(now)
res mount_premature_rc $rc
res premature_mount_secs "$(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}')"
say "slow mount (pid $mp) -> $rc after $(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}') s"
if [ -n "$METRICS" ]; then
	# Ready: the agent replays the journaled notification (policy report: nothing is sent).
	i=0
	while [ $i -lt 100 ]; do
		scrape metrics_replayed && [ -n "$(metric metrics_replayed '^notify_replayed_total')" ] && break
		sleep 0.2
		i=$((i + 1))
	done
	res metrics_replayed_polls $i
fi
umnt premature
dmsetup remove suitelog
res dmsetup_remove_rc $?

# --- unmount ---------------------------------------------------------------------------------
say "-- unmount: mount the filesystem again (log on the ram disk), write, umount"
res subtest_unmount begin
mnt unmount_setup -t xfs -o dax=always,logdev=/dev/ram0 $PMEM /mnt || exit 1
echo bye > /mnt/last
umnt unmount
res suite_secs "$(echo "$t_start $(now)" | awk '{printf "%.1f", $2 - $1}')"
res suite_done yes
exit 0
