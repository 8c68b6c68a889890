#!/usr/bin/env python3
"""Rebuilds fuzz/seeds/<target>/ from the recorded lab fixtures (xtask/tests/fixtures) and from
this host's own files. Run from the repository root: python3 fuzz/seeds/make.py

The binary records (ring, fanotify, healthmon, journal) are laid out as notify-common and the
kernel define them, with their field values taken from the fixtures' decoded events, so each
seed is a record a real run produced, in the bytes it came in. Seeds stay small: a few per
target, each well under 64 KiB."""
import glob, json, os, shutil, struct, subprocess, zlib

FIX = "xtask/tests/fixtures"
OUT = "fuzz/seeds"


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def host(path, limit=None):
    try:
        with open(path, "rb") as f:
            return f.read() if limit is None else f.read(limit)
    except OSError:
        return None


# Session files: the three smallest scenarios' sessions plus a premature one.
for scen in ["7.3-kprobe/no_holder", "6.1-kprobe/ext4", "6.12-kprobe/premature"]:
    with open(f"{FIX}/{scen}/session.json", "rb") as f:
        put("session_file", scen.replace("/", "_") + ".json", f.read())

# Journal: the replay scenario's records (journal_end.jsonl) as the entries the agent wrote
# (a notification, then its state), framed as agent/journal/mod.rs frames them.
entries = []
for r in lines(f"{FIX}/6.12-kprobe/replay/journal_end.jsonl")[:3]:
    entries.append(dict(kind="notification", id=r["id"], **r["notification"]))
    if r.get("state_wall_ns"):
        entries.append(dict(kind="state", id=r["id"], state=r["state"],
                            wall_ns=r["state_wall_ns"], note=r.get("note") or ""))
entries.append(dict(kind="meta", next_id=4))
payloads = [json.dumps(e, separators=(",", ":")).encode() for e in entries]


def frame(p):
    ln = struct.pack("<I", len(p))
    return struct.pack("<I", 0x31524A4E) + ln + struct.pack("<I", zlib.crc32(ln + p)) + p


head = b"NTFYJRNL" + struct.pack("<IIQI", 1, 32, 1796126299124256908, 0)
head += struct.pack("<I", zlib.crc32(head))
journal = head + b"".join(frame(p) for p in payloads)
put("journal_frames", "replay.journal", journal)
put("journal_frames", "torn_tail.journal", journal[:-7])
put("journal_frames", "one_frame", frame(payloads[0]))
put("journal_snapshot", "replay.lines", b"\n".join(payloads))

# Ring records: one abi::Event (48-byte header + 64-byte payload) per kernel event of the
# premature scenario's first events, kind and task as recorded.
KIND = {"notify_enter": 1, "notify_exit": 2, "holder_get": 3, "holder_put": 4,
        "fill_super_enter": 5, "fill_super_exit": 6, "mountfs_enter": 7, "mountfs_exit": 8}
seen = set()
for e in lines(f"{FIX}/6.12-kprobe/premature/events.jsonl"):
    k = e.get("event") or e.get("kind")
    if k not in KIND or k in seen:
        continue
    seen.add(k)
    comm = (e.get("comm") or "mount").encode()[:15].ljust(16, b"\0")
    hdr = struct.pack("<QQQII", e.get("seq", 1), e.get("ktime_ns", 0),
                      (e.get("pid", 1) << 32) | e.get("tid", e.get("pid", 1)), 0, KIND[k]) + comm
    payload = struct.pack("<QQQQ", 0xffff888004a3c000, 0, 0x1b000, 4096).ljust(64, b"\0")
    put("ring_record", k, hdr + payload)
if not seen:  # the schema changed: still seed one record of each kind
    for k, v in KIND.items():
        put("ring_record", k, struct.pack("<QQQII", v, v, 1, 0, v).ljust(48, b"\0") + bytes(64))

# fanotify FAN_FS_ERROR: the healthmon scenario's data_lost report as the kernel queues it:
# metadata, a FID record (XFS handle type 0x81: ino u64 + gen u32), an ERROR record.
fe = next(e for e in lines(f"{FIX}/7.3-kprobe/healthmon/events.jsonl") if e.get("kind") == "fs_error")
handle = struct.pack("<QI", fe["ino"], fe["generation"])
fid = struct.pack("<BBHii", 1, 0, 20 + len(handle), 0x103, 0) + struct.pack("<Ii", len(handle), 0x81) + handle
err = struct.pack("<BBHiI", 5, 0, 12, fe["error"], fe["error_count"])
body = fid + err
meta = struct.pack("<IBBHQii", 24 + len(body), 3, 0, 24, 0x8000, -1, 312)
put("fserror", "data_lost", meta + body)
put("fserror", "two", (meta + body) * 2)

# XFS healthmon: each decoded record of the healthmon scenario back in its 64-byte form.
DOM = ["mount", "fs", "ag", "inode", "rtgroup", "datadev", "rtdev", "logdev", "filerange"]
TYP = ["running", "lost", "unmount", "sick", "corrupt", "healthy", "shutdown", "media_error",
       "bufread", "bufwrite", "dioread", "diowrite", "datalost"]
for i, h in enumerate(e for e in lines(f"{FIX}/7.3-kprobe/healthmon/events.jsonl") if e.get("kind") == "health"):
    rec = struct.pack("<IIQ", DOM.index(h["domain"]), TYP.index(h["what"]), h["time_ns"])
    if h["domain"] == "filerange":
        rec += struct.pack("<QQQII", h["pos"], h["len"], h["ino"], h["generation"], h["error"])
    elif "daddr" in h:
        rec += struct.pack("<QQ", h["daddr"], h["sectors"])
    put("healthmon", f"{i}_{h['domain']}_{h['what']}", rec.ljust(64, b"\0"))

# BTF: the .BTF section of notify's own BPF object (bpf-linker's output), if built.
def elf_section(path, want):
    """One section's bytes from a little-endian ELF64 file (objcopy does not know BPF)."""
    b = open(path, "rb").read()
    shoff, = struct.unpack_from("<Q", b, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", b, 0x3A)
    sec = lambda i: struct.unpack_from("<IIQQQQ", b, shoff + i * shentsize)
    stroff = sec(shstrndx)[4]
    for i in range(shnum):
        name, _, _, _, off, size = sec(i)
        if b[stroff + name:b.index(b"\0", stroff + name)] == want:
            return b[off:off + size]
    return None


objs = sorted(glob.glob("target/**/notify-ebpf.o", recursive=True), key=os.path.getmtime)
if objs and elf_section(objs[-1], b".BTF"):
    put("btf", "notify_ebpf.btf", elf_section(objs[-1], b".BTF"))

# BTF as pahole encodes it (the kernel's own BTF encoder) for the structures the probes ask
# about, from a C file naming their members.
c = """struct super_block { unsigned long s_flags; void *s_fs_info; unsigned int s_dev; };
struct dax_device { void *holder_data; const void *holder_ops; unsigned long flags; };
struct xfs_mount { struct super_block *m_super; };
enum mf_flags { MF_COUNT_INCREASED = 1, MF_ACTION_REQUIRED = 2, MF_MUST_KILL = 4 };
int xfs_dax_notify_failure(struct dax_device *d, unsigned long long off, unsigned long long len,
                           int mf_flags) { return d->flags + off + len + mf_flags; }
struct xfs_mount m; enum mf_flags f;
"""
open("/tmp/notify-seed.c", "w").write(c)
if subprocess.run(["gcc", "-g", "-c", "-o", "/tmp/notify-seed.o", "/tmp/notify-seed.c"]).returncode == 0 \
        and subprocess.run(["pahole", "-J", "/tmp/notify-seed.o"]).returncode == 0:
    base = elf_section("/tmp/notify-seed.o", b".BTF")
    put("btf", "pahole_structs.btf", base)
    # A split BTF over that base, as a module's is over vmlinux (ids from 16, strings from the
    # base's string length): struct xlog pointing at the base's xfs_mount, and xlog_recover.
    # bpftool -B base reads it back.
    _, _, _, _, _, _, _, base_str_len = struct.unpack_from("<HBBIIIII", base, 0)
    strs = b""

    def sref(x):
        global strs
        off = base_str_len + len(strs)
        strs += x.encode() + b"\0"
        return off

    def ty(name, kind, vlen, size_or_type):
        return struct.pack("<III", name, vlen | kind << 24, size_or_type)

    types = ty(sref("xlog"), 4, 2, 16) + struct.pack("<III", sref("l_mp"), 17, 0) \
        + struct.pack("<III", sref("l_flags"), 11, 64)
    types += ty(0, 2, 0, 8) + ty(0, 13, 1, 11) + struct.pack("<II", sref("log"), 19)
    types += ty(0, 2, 0, 16) + ty(sref("xlog_recover"), 12, 1, 18)
    split = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strs)) + types + strs
    put("btf", "base_and_split", struct.pack("<H", len(base)) + base + split)

# Host files: kallsyms (the lines of the functions notify probes, and the first lines),
# tracepoint formats, available_filter_functions, mountinfo, maps, stat.
ks = (host("/proc/kallsyms") or b"").decode(errors="replace").splitlines()
pick = [l for l in ks if any(w in l for w in ("memory_failure", "dax_holder", "xfs_dax", "kill_dax"))]
put("kallsyms", "host_head", "\n".join(ks[:40]) + "\n")
put("kallsyms", "host_probed", "\n".join(pick[:60]) + "\n")
for tp in ["ras/memory_failure_event", "ras/mc_event", "signal/signal_generate",
           "xfs/xfs_ail_delete", "fs_dax/dax_pte_fault"]:
    t = host(f"/sys/kernel/tracing/events/{tp}/format")
    if t:
        put("tracefs_format", tp.replace("/", "_"), t)
# memory_failure_event as 6.12 prints it (its print table is what decode reads the page types
# from; the host may lack the event): the print format the unit tests keep from a 6.12 guest.
import re
src = open("notify-user/src/kernel/tracefs.rs").read()
pf = re.search(r'PRINT_FMT_612: &str = r#"(.*?)"#;', src).group(1)
put("tracefs_format", "memory_failure_event_6.12",
    "name: memory_failure_event\nID: 555\nformat:\n"
    "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
    "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
    "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
    "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n"
    "\tfield:unsigned long pfn;\toffset:8;\tsize:8;\tsigned:0;\n"
    "\tfield:int type;\toffset:16;\tsize:4;\tsigned:1;\n"
    "\tfield:int result;\toffset:20;\tsize:4;\tsigned:1;\n\n" + pf + "\n")
aff = (host("/sys/kernel/tracing/available_filter_functions") or b"").decode(errors="replace").splitlines()
if not aff:  # unreadable here (lockdown): the same names as kallsyms gives them, in its form
    aff = [" ".join(l.split()[2:3] + [f"[{m}]" for m in l.split()[3:4]]).replace("[[", "[").replace("]]", "]")
           for l in pick if l.split()[1] in "tT"]
put("tracefs_format", "filter_functions", "\n".join([l for l in aff if "dax" in l][:40]) + "\n")
put("mountinfo", "host", host("/proc/self/mountinfo") or b"")
put("proc_maps", "host_maps", host("/proc/self/maps") or b"")
put("proc_maps", "host_stat", host("/proc/self/stat") or b"")

# Badblocks: the ranges the lab poisoned (the replay scenario's journal), in sectors.
bb = "".join(f"{r['notification']['dax_offset'] // 512} {r['notification']['len'] // 512}\n"
             for r in lines(f"{FIX}/6.12-kprobe/replay/journal_end.jsonl"))
put("badblocks", "replay", bb)
put("badblocks", "empty", "")

# Agent config: the packaged example.
shutil.copy("packaging/agent.toml", os.path.join(OUT, "agent_config", "agent.toml")) if os.makedirs(
    os.path.join(OUT, "agent_config"), exist_ok=True) is None else None

# Metrics endpoint: what Prometheus 2 sends on a scrape, and a health probe.
put("metrics_http", "prometheus_scrape",
    "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9464\r\nUser-Agent: Prometheus/2.42.0\r\n"
    "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n"
    "Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n")
put("metrics_http", "healthz", "HEAD /healthz?x=1 HTTP/1.0\n\n")
