// Guest-side helper for the notify VM lab (built with gcc -static -O2 by
// `cargo xtask`). One program, three roles:
//
//   victim --poison [--page N] FILE   map FILE MAP_SHARED, touch it, then
//                                    madvise(MADV_HWPOISON) page N of it.
//   victim --sleep SECS FILE          bystander: map FILE, keep touching it
//                                    for SECS seconds, exit 0 if still alive.
//   victim --physoff [--page N] FILE  print where page N of FILE lives on
//                                    pmem0 (FIEMAP) and the matching pfn.
//
// Every role prints the file's inode ("ino="), physical offset
// ("physoff=0x...") and pfn so the lab can compare them with what the kernel
// and the agent report. A SIGBUS handler prints si_code (and, for a signal
// sent by a process, its pid as "from=") and exits 135 (128 + SIGBUS), like a
// shell would report a SIGBUS death. With --default-sigbus no handler is
// installed: a SIGBUS kills the process for real (wait status: signal 7).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL

static const char *tag = "victim";

static void on_sigbus(int sig, siginfo_t *si, void *ctx) {
	char buf[160];
	(void)sig;
	(void)ctx;
	int n;
	if (si->si_code <= 0) // sent by a process (SI_USER, SI_QUEUE...): si_pid is valid
		n = snprintf(buf, sizeof(buf), "%s: SIGBUS si_code=%d from=%d pid=%d\n", tag,
			     si->si_code, (int)si->si_pid, (int)getpid());
	else
		n = snprintf(buf, sizeof(buf), "%s: SIGBUS si_code=%d addr=%p pid=%d\n", tag,
			     si->si_code, si->si_addr, (int)getpid());
	if (n > 0)
		write(1, buf, (size_t)n);
	_exit(135);
}

// Physical byte offset (on the block device) of byte `off` of the file, or -1.
static long long physoff(int fd, unsigned long long off) {
	char raw[sizeof(struct fiemap) + 8 * sizeof(struct fiemap_extent)];
	struct fiemap *fm = (struct fiemap *)raw;
	memset(raw, 0, sizeof(raw));
	fm->fm_start = off;
	fm->fm_length = PAGE;
	fm->fm_flags = FIEMAP_FLAG_SYNC;
	fm->fm_extent_count = 8;
	if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
		perror("FS_IOC_FIEMAP");
		return -1;
	}
	for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
		struct fiemap_extent *e = &fm->fm_extents[i];
		if (off >= e->fe_logical && off < e->fe_logical + e->fe_length)
			return (long long)(e->fe_physical + (off - e->fe_logical));
	}
	return -1;
}

static void usage(void) {
	fprintf(stderr, "usage: victim [--tag T] [--page N] [--poison | --sleep SECS | --physoff]"
			" [--early] [--default-sigbus] [--base-pfn PFN] FILE\n");
	exit(2);
}

int main(int argc, char **argv) {
	unsigned long page = 0, base_pfn = 0x40000;
	int poison = 0, only_physoff = 0, early = 0, default_sigbus = 0;
	double sleep_s = 0;
	const char *file = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--poison"))
			poison = 1;
		else if (!strcmp(argv[i], "--physoff"))
			only_physoff = 1;
		else if (!strcmp(argv[i], "--early"))
			early = 1;
		else if (!strcmp(argv[i], "--default-sigbus"))
			default_sigbus = 1;
		else if (!strcmp(argv[i], "--page") && i + 1 < argc)
			page = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--sleep") && i + 1 < argc)
			sleep_s = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--tag") && i + 1 < argc)
			tag = argv[++i];
		else if (!strcmp(argv[i], "--base-pfn") && i + 1 < argc)
			base_pfn = strtoul(argv[++i], NULL, 0);
		else if (argv[i][0] == '-')
			usage();
		else
			file = argv[i];
	}
	if (!file)
		usage();
	setvbuf(stdout, NULL, _IONBF, 0);

	int fd = open(file, only_physoff ? O_RDONLY : O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "%s: open %s: %s\n", tag, file, strerror(errno));
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		st.st_ino = 0;
	long long phys = physoff(fd, page * PAGE);
	unsigned long pfn = phys < 0 ? 0 : base_pfn + (unsigned long)phys / PAGE;
	printf("%s: pid=%d file=%s ino=%lu page=%lu physoff=0x%llx pfn=0x%lx\n", tag, (int)getpid(),
	       file, (unsigned long)st.st_ino, page, phys, pfn);
	if (only_physoff)
		return phys < 0 ? 1 : 0;

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	if (!default_sigbus)
		sigaction(SIGBUS, &sa, NULL);
	if (early && prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0) < 0)
		perror("prctl(PR_MCE_KILL_EARLY)");

	size_t len = (page + 1) * PAGE;
	volatile char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "%s: mmap: %s\n", tag, strerror(errno));
		return 1;
	}
	for (size_t off = 0; off < len; off += PAGE)
		p[off] = (char)(off / PAGE);
	printf("%s: mapped %zu bytes at %p\n", tag, len, (void *)p);

	if (poison) {
		printf("%s: madvise(MADV_HWPOISON) page %lu\n", tag, page);
		if (madvise((void *)(p + page * PAGE), PAGE, MADV_HWPOISON) < 0) {
			fprintf(stderr, "%s: madvise: %s\n", tag, strerror(errno));
			return 1;
		}
		// Touch it again: a SIGBUS now ends us with 135.
		p[page * PAGE] = 1;
		printf("%s: survived the poison\n", tag);
		return 0;
	}

	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		for (size_t off = 0; off < len; off += PAGE)
			p[off]++;
		clock_gettime(CLOCK_MONOTONIC, &now);
		double el = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
		if (el >= sleep_s)
			break;
		usleep(50000);
	}
	printf("%s: survived\n", tag);
	return 0;
}
