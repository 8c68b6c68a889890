// Guest-side timing helper for `cargo xtask bench mount-overhead|storm` (lab/bench.sh).
// Built with gcc -static -O2 by `cargo xtask` like victim.c. Timing is done here, with
// CLOCK_MONOTONIC around the syscalls only, so no fork/exec of a shell tool is measured.
//
//   benchhelp mount DEV DIR N [recover]
//       N cycles of mount(DEV, DIR, "xfs", "dax=always") + umount(DIR). Prints one line per
//       cycle: "cycle=I mount_ns=... umount_ns=...". With "recover", every cycle first dirties
//       the log (untimed): mount, write+fsync a file, XFS_IOC_GOINGDOWN with LOGFLUSH (the
//       log holds the transactions, the metadata is not written back), umount; the timed mount
//       then replays the log.
//
//   benchhelp storm FILE NPAGES
//       Map FILE (NPAGES pages, MAP_SHARED), touch every page, then madvise(MADV_HWPOISON)
//       each page in turn. SIGBUS (the kernel killing the mapper of the page it just poisoned)
//       is caught and counted as poisoned. Prints "poisoned=N failed=F sigbus=S storm_ns=T".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#ifndef XFS_IOC_GOINGDOWN
#define XFS_IOC_GOINGDOWN _IOR('X', 125, uint32_t)
#endif
#define XFS_FSOP_GOING_FLAGS_LOGFLUSH 0x1

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
		long long t0 = now_ns();
		if (mount(dev, dir, "xfs", 0, "dax=always") < 0) {
			perror("mount");
			return 1;
		}
		long long t1 = now_ns();
		if (umount(dir) < 0) {
			perror("umount");
			return 1;
		}
		long long t2 = now_ns();
		printf("cycle=%d mount_ns=%lld umount_ns=%lld\n", i, t1 - t0, t2 - t1);
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

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && strcmp(argv[1], "mount") == 0)
		return cmd_mount(argc, argv);
	if (argc > 1 && strcmp(argv[1], "storm") == 0)
		return cmd_storm(argc, argv);
	fprintf(stderr, "usage: benchhelp mount DEV DIR N [recover] | storm FILE NPAGES\n");
	return 2;
}
