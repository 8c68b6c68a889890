// Guest-side timing helper for `cargo xtask bench mount-overhead|storm` (lab/bench.sh).
// Built with gcc -static -O2 by `cargo xtask` like victim.c. Timing is done here, with
// CLOCK_MONOTONIC around the syscalls only, so no fork/exec of a shell tool is measured.
//
//   benchhelp mount DEV DIR N [recover]
//       N cycles of mount(DEV, DIR, "xfs", "dax=always") + umount(DIR). Prints one line per
//       cycle: "cycle=I mount_ns=... umount_ns=... mount_cpu_ns=... umount_cpu_ns=..." (wall
//       CLOCK_MONOTONIC, and the thread's CPU time). With "recover", every cycle first dirties
//       the log (untimed): mount, write+fsync a file, XFS_IOC_GOINGDOWN with LOGFLUSH (the
//       log holds the transactions, the metadata is not written back), umount; the timed mount
//       then replays the log.
//
//   benchhelp storm FILE NPAGES
//       Map FILE (NPAGES pages, MAP_SHARED), touch every page, then madvise(MADV_HWPOISON)
//       each page in turn. SIGBUS (the kernel killing the mapper of the page it just poisoned)
//       is caught and counted as poisoned. Prints "poisoned=N failed=F sigbus=S storm_ns=T".
//
//   benchhelp mkfiles DIR N
//       Create DIR/f0 .. DIR/f{N-1}, one written page each, fsync'ed (real extents).
//   benchhelp pfns DIR N [BASE_PFN]
//       Print the pfn of page 0 of every DIR/fI (FIEMAP physical offset / 4096 + BASE_PFN,
//       default 0x40000), one per line.
//   benchhelp inject PFNFILE
//       Write every pfn of PFNFILE to /sys/kernel/debug/hwpoison/corrupt-pfn; prints
//       "injected=N ok=K errno_E=C ...".
//   benchhelp contain DIR N kernel|replay [BASE_PFN] [--list-bad] [-- CMD ARGS...]
//       Containment latency. Forks N mappers: each maps page 0 of DIR/fI MAP_SHARED, touches it,
//       asks for early kill (PR_MCE_KILL_EARLY) and waits; its SIGBUS handler records
//       CLOCK_MONOTONIC (and si_code) in a shared page and exits. Once all are mapped, t0 = now,
//       then "kernel": write every page's pfn to corrupt-pfn (the kernel's own kill);
//       "replay": run CMD (notify journal replay). Waits for every mapper ($CONTAIN_TIMEOUT, default 30 s, at most, then
//       SIGKILLs the rest) and prints "n=N mode=M sigbus=S last_ns=L first_ns=F cmd_ns=C
//       codes=..." with times relative to t0 (codes: si_code:count, -1 = other).
//       --list-bad: once all are mapped (a listed page can no longer be mapped), list every
//       page's sectors in /sys/block/pmem0/badblocks, as the platform does after a machine
//       check. A fanotify group marked on DIR's filesystem counts XFS's own data-loss reports
//       (FAN_FS_ERROR, EIO; Linux 7.0+) from t0: "xfs_reports=R xfs_last_ns=T", T when the
//       last of them arrived.
//   benchhelp startup LOG PATTERN -- CMD ARGS...
//       Start-up latency. t0 = now, fork+exec CMD with its stdout and stderr on one pipe; every
//       line read is copied to LOG; at the first line containing PATTERN, t1 = now. Then SIGINT
//       (SIGKILL after 60 s), read to EOF, reap. Prints "ready_ns=T1-T0 found=0|1 status=S".
//       Timed here so no shell polling interval is in the figure.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#ifndef XFS_IOC_GOINGDOWN
#define XFS_IOC_GOINGDOWN _IOR('X', 125, uint32_t)
#endif
#define XFS_FSOP_GOING_FLAGS_LOGFLUSH 0x1

// CPU time of this thread: what the syscall itself ran (kprobe and BPF programs run in its
// context), without waits and without what other tasks ran meanwhile (the agent, kworkers).
// Under qemu -icount that is its instruction count.
static long long cpu_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int dirty_log(const char *dev, const char *dir) {
	if (mount(dev, dir, "xfs", 0, "dax=always") < 0) {
		perror("dirty: mount");
		return -1;
	}
	char path[512];
	snprintf(path, sizeof(path), "%s/dirty.%lld", dir, now_ns());
	int fd = open(path, O_CREAT | O_WRONLY, 0644);
	if (fd < 0) {
		perror("dirty: open");
		return -1;
	}
	char buf[4096];
	memset(buf, 0x5a, sizeof(buf));
	for (int i = 0; i < 16; i++)
		if (write(fd, buf, sizeof(buf)) < 0)
			perror("dirty: write");
	fsync(fd);
	close(fd);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	uint32_t flags = XFS_FSOP_GOING_FLAGS_LOGFLUSH;
	if (dfd < 0 || ioctl(dfd, XFS_IOC_GOINGDOWN, &flags) < 0) {
		perror("dirty: XFS_IOC_GOINGDOWN");
		return -1;
	}
	close(dfd);
	if (umount(dir) < 0) {
		perror("dirty: umount");
		return -1;
	}
	return 0;
}

static int cmd_mount(int argc, char **argv) {
	if (argc < 5)
		return 2;
	const char *dev = argv[2], *dir = argv[3];
	int n = atoi(argv[4]);
	int recover = argc > 5 && strcmp(argv[5], "recover") == 0;
	for (int i = 0; i < n; i++) {
		if (recover && dirty_log(dev, dir) < 0)
			return 1;
		long long t0 = now_ns(), c0 = cpu_ns();
		if (mount(dev, dir, "xfs", 0, "dax=always") < 0) {
			perror("mount");
			return 1;
		}
		long long t1 = now_ns(), c1 = cpu_ns();
		if (umount(dir) < 0) {
			perror("umount");
			return 1;
		}
		long long t2 = now_ns(), c2 = cpu_ns();
		printf("cycle=%d mount_ns=%lld umount_ns=%lld mount_cpu_ns=%lld umount_cpu_ns=%lld\n", i,
		       t1 - t0, t2 - t1, c1 - c0, c2 - c1);
	}
	return 0;
}

static volatile sig_atomic_t sigbus_count;
static sigjmp_buf jb;

static void on_sigbus(int sig) {
	(void)sig;
	sigbus_count++;
	siglongjmp(jb, 1);
}

static int cmd_storm(int argc, char **argv) {
	if (argc < 4)
		return 2;
	const char *file = argv[2];
	long n = atol(argv[3]);
	int fd = open(file, O_RDWR);
	if (fd < 0) {
		perror("open");
		return 1;
	}
	char *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (long i = 0; i < n; i++)
		p[i * PAGE] = 1;
	signal(SIGBUS, on_sigbus);
	long poisoned = 0, failed = 0;
	long long t0 = now_ns();
	for (volatile long i = 0; i < n; i++) {
		if (sigsetjmp(jb, 1))
			continue; // the kernel poisoned the page and sent us SIGBUS for it

		if (madvise(p + i * PAGE, PAGE, MADV_HWPOISON) == 0)
			poisoned++;
		else
			failed++;
	}
	long long t1 = now_ns();
	printf("poisoned=%ld failed=%ld sigbus=%d storm_ns=%lld\n", poisoned + sigbus_count,
	       failed, (int)sigbus_count, t1 - t0);
	return 0;
}

// ---- containment -------------------------------------------------------------------------

#define CORRUPT_PFN "/sys/kernel/debug/hwpoison/corrupt-pfn"

static long long physoff0(int fd) {
	char raw[sizeof(struct fiemap) + 4 * sizeof(struct fiemap_extent)];
	struct fiemap *fm = (struct fiemap *)raw;
	memset(raw, 0, sizeof(raw));
	fm->fm_start = 0;
	fm->fm_length = PAGE;
	fm->fm_flags = FIEMAP_FLAG_SYNC;
	fm->fm_extent_count = 4;
	if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0 || fm->fm_mapped_extents == 0)
		return -1;
	return (long long)fm->fm_extents[0].fe_physical;
}

static int cmd_mkfiles(int argc, char **argv) {
	if (argc < 4)
		return 2;
	int n = atoi(argv[3]);
	char buf[PAGE], path[512];
	memset(buf, 0x6b, sizeof(buf));
	mkdir(argv[2], 0755);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/f%d", argv[2], i);
		int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
		if (fd < 0 || write(fd, buf, PAGE) != (ssize_t)PAGE || fsync(fd) < 0) {
			perror(path);
			return 1;
		}
		close(fd);
	}
	return 0;
}

static long pfn_of(const char *dir, int i, unsigned long base) {
	char path[512];
	snprintf(path, sizeof(path), "%s/f%d", dir, i);
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		perror(path);
		return -1;
	}
	long long ph = physoff0(fd);
	close(fd);
	if (ph < 0) {
		fprintf(stderr, "%s: no extent\n", path);
		return -1;
	}
	return (long)(base + (unsigned long)ph / PAGE);
}

static int cmd_pfns(int argc, char **argv) {
	if (argc < 4)
		return 2;
	int n = atoi(argv[3]);
	unsigned long base = argc > 4 ? strtoul(argv[4], NULL, 0) : 0x40000;
	for (int i = 0; i < n; i++) {
		long pfn = pfn_of(argv[2], i, base);
		if (pfn < 0)
			return 1;
		printf("0x%lx\n", pfn);
	}
	return 0;
}

// Writes one pfn to corrupt-pfn; returns 0 or errno.
static int inject_pfn(long pfn) {
	char s[32];
	int len = snprintf(s, sizeof(s), "0x%lx\n", pfn);
	int fd = open(CORRUPT_PFN, O_WRONLY);
	if (fd < 0)
		return errno;
	int rc = write(fd, s, (size_t)len) < 0 ? errno : 0;
	close(fd);
	return rc;
}

static int cmd_inject(int argc, char **argv) {
	if (argc < 3)
		return 2;
	FILE *f = fopen(argv[2], "r");
	if (!f) {
		perror(argv[2]);
		return 1;
	}
	int n = 0, ok = 0, errs[256] = {0};
	char line[64];
	while (fgets(line, sizeof(line), f)) {
		long pfn = strtol(line, NULL, 0);
		if (pfn <= 0)
			continue;
		int rc = inject_pfn(pfn);
		n++;
		if (rc == 0)
			ok++;
		else
			errs[rc & 255]++;
	}
	fclose(f);
	printf("injected=%d ok=%d", n, ok);
	for (int e = 1; e < 256; e++)
		if (errs[e])
			printf(" errno_%d=%d", e, errs[e]);
	printf("\n");
	return 0;
}

struct slot {
	long long ns; // CLOCK_MONOTONIC of the SIGBUS, 0 if none
	int code;
	int pad;
};
static struct slot *slots;
static int my_slot;

static void mapper_sigbus(int sig, siginfo_t *si, void *ctx) {
	(void)sig;
	(void)ctx;
	slots[my_slot].ns = now_ns();
	slots[my_slot].code = si->si_code;
	_exit(135);
}

static volatile sig_atomic_t alarmed;
static void on_alarm(int sig) {
	(void)sig;
	alarmed = 1;
}

// XFS's own reports (7.0+): FAN_FS_ERROR events with EIO ("data lost"), counted with the
// reports fanotify folded into them. A child reads them as they come and notes when the n-th
// arrived, in shared memory.
struct xfs_watch {
	volatile long long last_ns;
	volatile int reports;
	volatile int up;
};

static void watch_reports(const char *dir, struct xfs_watch *w, int n, int ready_fd) {
	int fd = fanotify_init(FAN_CLASS_NOTIF | 0x00000200 /* FAN_REPORT_FID */, O_RDONLY);
	if (fd >= 0 && fanotify_mark(fd, FAN_MARK_ADD | 0x00000100 /* FAN_MARK_FILESYSTEM */,
				     0x00008000ULL /* FAN_FS_ERROR */, AT_FDCWD, dir) == 0)
		w->up = 1;
	if (write(ready_fd, "w", 1) != 1 || !w->up)
		_exit(0);
	char buf[8192];
	while (w->reports < n) {
		ssize_t len = read(fd, buf, sizeof(buf));
		if (len <= 0)
			_exit(0);
		long long t = now_ns();
		for (ssize_t pos = 0; pos + 24 <= len;) {
			uint32_t ev_len, ml;
			memcpy(&ev_len, buf + pos, 4);
			uint16_t mlen;
			memcpy(&mlen, buf + pos + 6, 2);
			ml = mlen;
			if (ev_len < 24 || pos + (ssize_t)ev_len > len)
				break;
			for (uint32_t i = ml; i + 4 <= ev_len;) {
				uint8_t type = (uint8_t)buf[pos + i];
				uint16_t il;
				memcpy(&il, buf + pos + i + 2, 2);
				if (il < 4 || i + il > ev_len)
					break;
				if (type == 5 /* FAN_EVENT_INFO_TYPE_ERROR */ && il >= 12) {
					int32_t err;
					uint32_t count;
					memcpy(&err, buf + pos + i + 4, 4);
					memcpy(&count, buf + pos + i + 8, 4);
					if (err == EIO) {
						w->reports += (int)count;
						w->last_ns = t;
					}
				}
				i += il;
			}
			pos += ev_len;
		}
	}
	_exit(0);
}

static int cmd_contain(int argc, char **argv) {
	if (argc < 5)
		return 2;
	const char *dir = argv[2];
	int n = atoi(argv[3]);
	int replay = strcmp(argv[4], "replay") == 0;
	unsigned long base = 0x40000;
	unsigned timeout_s = getenv("CONTAIN_TIMEOUT") ? (unsigned)atoi(getenv("CONTAIN_TIMEOUT")) : 30;
	char **cmd = NULL;
	int list_bad = 0;
	for (int i = 5; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			cmd = &argv[i + 1];
			break;
		}
		if (!strcmp(argv[i], "--list-bad"))
			list_bad = 1;
		else
			base = strtoul(argv[i], NULL, 0);
	}
	if (replay && (!cmd || !cmd[0])) {
		fprintf(stderr, "contain replay needs -- CMD\n");
		return 2;
	}
	long *pfns = calloc((size_t)n, sizeof(long));
	pid_t *pids = calloc((size_t)n, sizeof(pid_t));
	if (!replay || list_bad)
		for (int i = 0; i < n; i++)
			if ((pfns[i] = pfn_of(dir, i, base)) < 0)
				return 1;
	slots = mmap(NULL, (size_t)n * sizeof(struct slot) + PAGE, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (slots == MAP_FAILED) {
		perror("mmap slots");
		return 1;
	}
	int ready[2];
	if (pipe(ready) < 0)
		return 1;
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			close(ready[0]);
			my_slot = i;
			struct sigaction sa;
			memset(&sa, 0, sizeof(sa));
			sa.sa_sigaction = mapper_sigbus;
			sa.sa_flags = SA_SIGINFO;
			sigaction(SIGBUS, &sa, NULL);
			prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0);
			char path[512];
			snprintf(path, sizeof(path), "%s/f%d", dir, i);
			int fd = open(path, O_RDWR);
			volatile char *p =
			    fd < 0 ? MAP_FAILED
				   : mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (p == MAP_FAILED) {
				perror(path);
				_exit(1);
			}
			p[0] = 1;
			if (write(ready[1], "r", 1) != 1)
				_exit(1);
			for (;;)
				pause();
		}
		pids[i] = pid;
	}
	close(ready[1]);
	for (int got = 0; got < n;) {
		char c;
		ssize_t r = read(ready[0], &c, 1);
		if (r <= 0) {
			fprintf(stderr, "contain: a mapper died before mapping (%d of %d ready)\n",
				got, n);
			break;
		}
		got++;
	}
	// What the platform does after a machine check: list the pages' sectors as bad, after the
	// mappers mapped them (a listed page can no longer be mapped: the driver refuses the fault).
	int listed = 0;
	if (list_bad) {
		for (int i = 0; i < n; i++) {
			FILE *bb = fopen("/sys/block/pmem0/badblocks", "w");
			if (!bb)
				break;
			if (fprintf(bb, "%ld 8\n", (pfns[i] - (long)base) * 8) > 0 && fclose(bb) == 0)
				listed++;
		}
	}
	struct xfs_watch *xw =
	    mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (xw == MAP_FAILED)
		return 1;
	int wready[2];
	if (pipe(wready) < 0)
		return 1;
	pid_t wpid = fork();
	if (wpid == 0) {
		close(wready[0]);
		watch_reports(dir, xw, n, wready[1]);
	}
	close(wready[1]);
	{
		char c;
		if (read(wready[0], &c, 1) != 1)
			fprintf(stderr, "contain: the report watcher died\n");
	}
	struct sigaction al;
	memset(&al, 0, sizeof(al));
	al.sa_handler = on_alarm; // no SA_RESTART: the alarm must interrupt waitpid
	sigaction(SIGALRM, &al, NULL);
	long long t0 = now_ns(), cmd_ns = -1;
	int inj_ok = 0, inj_err = 0;
	pid_t cpid = -1;
	if (replay) {
		cpid = fork();
		if (cpid == 0) {
			dup2(2, 1); // the command's output goes to our stderr, not into our result line
			execv(cmd[0], cmd);
			perror("execv");
			_exit(127);
		}
	} else {
		for (int i = 0; i < n; i++) {
			if (inject_pfn(pfns[i]) == 0)
				inj_ok++;
			else
				inj_err++;
		}
		cmd_ns = now_ns() - t0;
	}
	alarm(timeout_s);
	int left = n + (cpid > 0 ? 1 : 0), cmd_status = -1;
	while (left > 0 && !alarmed) {
		int st;
		pid_t w = waitpid(-1, &st, 0);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (w == wpid) { // the watcher saw every report: not one of those waited for
			wpid = -1;
			continue;
		}
		if (w == cpid) {
			cmd_ns = now_ns() - t0;
			cmd_status = st;
		}
		left--;
	}
	// XFS's reports may trail the last SIGBUS (a kworker sends them): up to 5 s more, on
	// kernels whose XFS reports at all (7.0+).
	struct utsname un;
	int seven = uname(&un) == 0 && atoi(un.release) >= 7;
	for (int i = 0; seven && xw->up && xw->reports < n && i < 500 && !alarmed; i++)
		usleep(10000);
	if (wpid > 0) {
		kill(wpid, SIGKILL);
		waitpid(wpid, NULL, 0);
	}
	if (alarmed) {
		for (int i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
		if (cpid > 0)
			kill(cpid, SIGKILL);
		while (waitpid(-1, NULL, 0) > 0)
			;
	}
	int got = 0;
	long long first = -1, last = -1;
	int codes[8] = {0};
	for (int i = 0; i < n; i++) {
		if (!slots[i].ns)
			continue;
		got++;
		long long d = slots[i].ns - t0;
		if (first < 0 || d < first)
			first = d;
		if (d > last)
			last = d;
		int c = slots[i].code;
		codes[c >= 0 && c < 7 ? c : 7]++;
	}
	printf("n=%d mode=%s sigbus=%d first_ns=%lld last_ns=%lld cmd_ns=%lld timed_out=%d", n,
	       replay ? "replay" : "kernel", got, first, last, cmd_ns, (int)alarmed);
	printf(" listed=%d xfs_watch=%d xfs_reports=%d xfs_last_ns=%lld", listed, xw->up,
	       xw->reports, xw->reports ? xw->last_ns - t0 : -1LL);
	if (!replay)
		printf(" injected_ok=%d injected_err=%d", inj_ok, inj_err);
	else
		printf(" cmd_status=%d", cmd_status);
	printf(" codes=");
	const char *sep = "";
	for (int c = 0; c < 8; c++)
		if (codes[c]) {
			printf("%s%d:%d", sep, c == 7 ? -1 : c, codes[c]);
			sep = ",";
		}
	printf("\n");
	return 0;
}

// holdmon DIR SECS: take the XFS health monitor of the filesystem mounted at DIR (7.0+,
// XFS_IOC_HEALTH_MONITOR on its root directory) and hold it for SECS seconds, the way
// xfs_healer holds it: another client (notify --healthmon) must be refused. Prints "held=1 fd=N"
// or "held=0 errno=E".
static int cmd_holdmon(int argc, char **argv) {
	if (argc < 4)
		return 2;
	int dir = open(argv[2], O_RDONLY | O_DIRECTORY);
	if (dir < 0) {
		printf("held=0 errno=%d\n", errno);
		return 1;
	}
	struct {
		uint64_t flags;
		uint8_t format;
		uint8_t pad[23];
	} req;
	memset(&req, 0, sizeof(req));
	// _IOW('X', 68, struct xfs_health_monitor): 32 bytes.
	int fd = ioctl(dir, (1UL << 30) | (32UL << 16) | ('X' << 8) | 68, &req);
	if (fd < 0) {
		printf("held=0 errno=%d\n", errno);
		return 1;
	}
	close(dir);
	printf("held=1 fd=%d\n", fd);
	sleep((unsigned)atoi(argv[3]));
	return 0;
}

static int cmd_startup(int argc, char **argv) {
	if (argc < 6 || strcmp(argv[4], "--") != 0) {
		fprintf(stderr, "usage: benchhelp startup LOG PATTERN -- CMD ARGS...\n");
		return 2;
	}
	FILE *log = fopen(argv[2], "w");
	if (!log) {
		perror(argv[2]);
		return 1;
	}
	const char *pattern = argv[3];
	int p[2];
	if (pipe(p) != 0) {
		perror("pipe");
		return 1;
	}
	long long t0 = now_ns(), t1 = -1;
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		execvp(argv[5], argv + 5);
		perror(argv[5]);
		_exit(127);
	}
	close(p[1]);
	FILE *in = fdopen(p[0], "r");
	char line[4096];
	int found = 0;
	while (fgets(line, sizeof(line), in)) {
		if (!found && strstr(line, pattern)) {
			t1 = now_ns();
			found = 1;
			kill(pid, SIGINT);
			// No SA_RESTART: the alarm ends a read that a child ignoring SIGINT would block.
			struct sigaction sa = {.sa_handler = on_alarm};
			sigaction(SIGALRM, &sa, NULL);
			alarm(60);
		}
		fputs(line, log);
	}
	if (alarmed || !found)
		kill(pid, SIGKILL);
	int st = 0;
	waitpid(pid, &st, 0);
	fclose(log);
	printf("ready_ns=%lld found=%d status=%d\n", found ? t1 - t0 : -1, found, st);
	return found ? 0 : 1;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && strcmp(argv[1], "holdmon") == 0)
		return cmd_holdmon(argc, argv);
	if (argc > 1 && strcmp(argv[1], "mount") == 0)
		return cmd_mount(argc, argv);
	if (argc > 1 && strcmp(argv[1], "storm") == 0)
		return cmd_storm(argc, argv);
	if (argc > 1 && strcmp(argv[1], "mkfiles") == 0)
		return cmd_mkfiles(argc, argv);
	if (argc > 1 && strcmp(argv[1], "pfns") == 0)
		return cmd_pfns(argc, argv);
	if (argc > 1 && strcmp(argv[1], "inject") == 0)
		return cmd_inject(argc, argv);
	if (argc > 1 && strcmp(argv[1], "contain") == 0)
		return cmd_contain(argc, argv);
	if (argc > 1 && strcmp(argv[1], "startup") == 0)
		return cmd_startup(argc, argv);
	fprintf(stderr, "usage: benchhelp mount DEV DIR N [recover] | storm FILE NPAGES | mkfiles DIR N |"
			" pfns DIR N | inject PFNFILE | contain DIR N kernel|replay [--list-bad] [-- CMD] |"
			" holdmon DIR SECS | startup LOG PATTERN -- CMD\n");
	return 2;
}
