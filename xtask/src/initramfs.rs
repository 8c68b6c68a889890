//! The lab's busybox initramfs: kernel modules (in dependency order, from
//! each module's `depends=`/`softdep` modinfo), mkfs.xfs, xfs_io and dmsetup
//! with their shared libraries, the static C helpers from `lab/`, the guest
//! scripts and (when built) the `notify` agent. Rebuilt only when an input
//! changed (a manifest of sources, sizes and mtimes is kept next to it).

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    process::Command,
    time::UNIX_EPOCH,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    kernel::Kernel,
    util::{self, output, run},
};

/// Modules the scenarios need, loaded in this order after their dependencies. Dependencies
/// come from each module's own `depends=`/`softdep` (modinfo): on 6.1 and 6.12 xfs pulls in
/// libcrc32c and, through libcrc32c's `softdep pre: crc32c`, crc32c_generic; on 7.3 xfs has no
/// dependencies (crc32c is built in and libcrc32c is gone). A wanted module that is built into
/// a kernel (`modules.builtin`) is skipped with a note.
pub const WANTED_MODULES: &[&str] = &[
    "xfs",
    "libnvdimm",
    "nd_btt",
    "nd_pmem",
    "nd_e820",
    "hwpoison-inject",
    "brd",
    "dm-mod",
    "dm-delay",
    // The ext4 scenario (Debian builds ext4 as a module; jbd2 and mbcache come with it).
    "ext4",
];

/// Extra insmod parameters.
fn module_args(name: &str) -> &'static str {
    match name {
        // 128 MiB ram disks (an external log wants >= 64 MiB). ram0: the external log of the replay and premature scenarios; ram1: the journal
        // faults scenario's device-mapper device (brd allocates pages only as they are written).
        "brd" => "rd_nr=2 rd_size=131072",
        _ => "",
    }
}

/// Host programs copied into the guest with their libraries.
const HOST_TOOLS: &[&str] = &["mkfs.xfs", "xfs_io", "dmsetup", "mkfs.ext4"];

/// Guest-side sources under `lab/`.
const LAB_SCRIPTS: &[&str] = &[
    "init",
    "scenarios.sh",
    "bench.sh",
    "mount_suite.sh",
    "transport.sh",
];
const LAB_C: &[&str] = &["victim", "benchhelp"];

enum Src {
    /// Copy a host file (optionally transformed).
    File(PathBuf, Transform),
    /// Literal content.
    Text(String),
    Symlink(String),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transform {
    None,
    /// `xz -dc` / `zstd -dc` a compressed module.
    Decompress,
    /// Drop debug info (the agent's debug build is huge).
    StripDebug,
}

/// What goes into the image: destination path (relative, no leading `/`) -> source.
struct Plan {
    entries: BTreeMap<String, (Src, u32)>,
}

impl Plan {
    fn file(&mut self, dest: &str, src: &Path, t: Transform, mode: u32) {
        self.entries.insert(
            dest.trim_start_matches('/').to_string(),
            (Src::File(src.to_path_buf(), t), mode),
        );
    }

    fn text(&mut self, dest: &str, s: String, mode: u32) {
        self.entries.insert(dest.to_string(), (Src::Text(s), mode));
    }

    /// The manifest line of every entry: changes whenever an input changes.
    fn manifest(&self) -> Result<String> {
        let mut m = String::new();
        for (dest, (src, mode)) in &self.entries {
            match src {
                Src::File(p, t) => {
                    let md = fs::metadata(p).with_context(|| format!("stat {}", p.display()))?;
                    let mtime = md.modified()?.duration_since(UNIX_EPOCH)?.as_nanos();
                    m.push_str(&format!(
                        "{dest} {mode:o} file {} {} {mtime} {t:?}\n",
                        p.display(),
                        md.len()
                    ));
                }
                Src::Text(s) => m.push_str(&format!("{dest} {mode:o} text {s:?}\n")),
                Src::Symlink(t) => m.push_str(&format!("{dest} link {t}\n")),
            }
        }
        Ok(m)
    }
}

/// Where the initramfs of a kernel lives. Images with and without the agent
/// are kept apart, so a `--no-agent` run never swaps the image under a VM of
/// another run that is about to boot.
pub fn image_path(k: &Kernel, with_agent: bool) -> PathBuf {
    util::target_dir()
        .join("lab")
        .join(k.flavor.label())
        .join(if with_agent {
            "initrd.cpio.gz"
        } else {
            "initrd-noagent.cpio.gz"
        })
}

/// Builds (or reuses) the initramfs for `k`; `agent` is the notify binary if any.
/// Returns the image path and whether it was rebuilt.
pub fn ensure(k: &Kernel, agent: Option<&Path>) -> Result<(PathBuf, bool)> {
    let lab_src = util::workspace_root().join("lab");
    let bin_dir = util::target_dir().join("lab/bin");
    let helpers = build_helpers(&lab_src, &bin_dir)?;

    let mut plan = Plan {
        entries: BTreeMap::new(),
    };
    plan.file(
        "bin/busybox",
        Path::new("/bin/busybox"),
        Transform::None,
        0o755,
    );
    plan.entries
        .insert("init".into(), (Src::Symlink("lab/init".into()), 0));
    for s in LAB_SCRIPTS {
        plan.file(
            &format!("lab/{s}"),
            &lab_src.join(s),
            Transform::None,
            0o755,
        );
    }
    for h in &helpers {
        let name = h.file_name().unwrap().to_string_lossy().into_owned();
        plan.file(&format!("lab/{name}"), h, Transform::None, 0o755);
    }

    // Modules, in load order.
    let (order, notes) = module_order(&k.moddir, WANTED_MODULES)?;
    for n in &notes {
        eprintln!("lab: {} modules: {n}", k.flavor.label());
    }
    let mut list = String::new();
    for (name, path) in &order {
        let compressed = path.extension().is_some_and(|e| e == "xz" || e == "zst");
        let dest = format!("{name}.ko");
        plan.file(
            &format!("lib/modules/{dest}"),
            path,
            if compressed {
                Transform::Decompress
            } else {
                Transform::None
            },
            0o644,
        );
        list.push_str(&format!("{dest} {}\n", module_args(name)));
    }
    plan.text("lab/modules.list", list, 0o644);

    // Host tools with their libraries.
    let mut elves: Vec<(String, PathBuf, Transform)> = Vec::new();
    for t in HOST_TOOLS {
        let p = which(t)?;
        elves.push((format!("usr/sbin/{t}"), p, Transform::None));
    }
    if let Some(a) = agent {
        elves.push(("bin/notify".into(), a.to_path_buf(), Transform::StripDebug));
    }
    for (dest, src, t) in &elves {
        plan.file(dest, src, *t, 0o755);
        for lib in ldd(src)? {
            let d = lib.display().to_string();
            plan.file(&d, &lib, Transform::None, 0o755);
        }
    }
    plan.text(
        "lab/kernel.txt",
        format!("{}\n{}\n", k.package, k.release),
        0o644,
    );

    let img = image_path(k, agent.is_some());
    let manifest_path = img.with_extension("manifest");
    let manifest = plan.manifest()?;
    if img.exists() && fs::read_to_string(&manifest_path).ok().as_deref() == Some(&manifest) {
        return Ok((img, false));
    }
    let staging = img.with_file_name(if agent.is_some() {
        "initramfs-root"
    } else {
        "initramfs-root-noagent"
    });
    let _ = fs::remove_dir_all(&staging);
    util::mkdirp(&staging)?;
    for d in ["proc", "sys", "dev", "tmp", "mnt", "run", "lib64", "etc"] {
        util::mkdirp(&staging.join(d))?;
    }
    for (dest, (src, mode)) in &plan.entries {
        let to = staging.join(dest);
        util::mkdirp(to.parent().unwrap())?;
        match src {
            Src::Symlink(t) => symlink(t, &to)?,
            Src::Text(s) => fs::write(&to, s)?,
            Src::File(p, Transform::None) => {
                fs::copy(p, &to).with_context(|| format!("copying {}", p.display()))?;
            }
            Src::File(p, Transform::Decompress) => {
                let tool = if p.extension().is_some_and(|e| e == "zst") {
                    "zstd"
                } else {
                    "xz"
                };
                let out = Command::new(tool)
                    .arg("-dc")
                    .arg(p)
                    .output()
                    .with_context(|| format!("{tool} -dc {}", p.display()))?;
                if !out.status.success() {
                    bail!("{tool} -dc {} failed", p.display());
                }
                fs::write(&to, out.stdout)?;
            }
            Src::File(p, Transform::StripDebug) => {
                run(Command::new("objcopy").arg("--strip-debug").arg(p).arg(&to))?;
            }
        }
        if !matches!(src, Src::Symlink(_)) {
            fs::set_permissions(&to, fs::Permissions::from_mode(*mode))?;
        }
    }
    // cpio newc, owned by root, gzip'ed.
    let tmp = img.with_extension("tmp");
    run(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet | gzip -1 > '{}'",
        staging.display(),
        tmp.display()
    )))?;
    fs::rename(&tmp, &img)?;
    fs::write(&manifest_path, manifest)?;
    Ok((img, true))
}

/// Compiles `lab/*.c` with `gcc -static -O2` when the source is newer.
fn build_helpers(src: &Path, out: &Path) -> Result<Vec<PathBuf>> {
    util::mkdirp(out)?;
    let mut bins = Vec::new();
    for name in LAB_C {
        let c = src.join(format!("{name}.c"));
        let bin = out.join(name);
        let stale = match (fs::metadata(&c), fs::metadata(&bin)) {
            (Ok(s), Ok(b)) => s.modified()? > b.modified()?,
            (Ok(_), Err(_)) => true,
            (Err(e), _) => return Err(e).with_context(|| format!("{}", c.display())),
        };
        if stale {
            run(Command::new("gcc")
                .args(["-static", "-O2", "-Wall", "-Wextra", "-o"])
                .arg(&bin)
                .arg(&c))?;
        }
        bins.push(bin);
    }
    Ok(bins)
}

fn which(prog: &str) -> Result<PathBuf> {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join(prog);
        if p.exists() {
            return Ok(p);
        }
    }
    bail!("{prog} not found on the host (run `cargo xtask setup`)")
}

/// Shared libraries and the ELF interpreter of a dynamic executable
/// (empty for a static one).
fn ldd(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(bin).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("not a dynamic executable") {
        return Ok(Vec::new());
    }
    Ok(parse_ldd(&text))
}

pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    let mut libs = Vec::new();
    for l in text.lines() {
        let l = l.trim();
        let path = match l.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => l.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    libs
}

/// Module name as the kernel spells it (`-` and `_` are the same).
fn norm(name: &str) -> String {
    name.replace('-', "_")
}

/// Finds `name.ko[.xz|.zst]` under `moddir` -> (normalized name -> path).
fn index_modules(moddir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    fn walk(d: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<()> {
        for e in fs::read_dir(d)? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if let Some(n) = p.file_name().and_then(|n| n.to_str()) {
                for ext in [".ko", ".ko.xz", ".ko.zst"] {
                    if let Some(base) = n.strip_suffix(ext) {
                        out.insert(norm(base), p.clone());
                    }
                }
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(&moddir.join("kernel"), &mut out)?;
    Ok(out)
}

/// Names built into the kernel (`modules.builtin`: one `kernel/.../name.ko` a line).
pub fn parse_builtin(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.rsplit('/').next())
        .map(|n| norm(n.trim_end_matches(".ko")))
        .collect()
}

/// Aliases of built-in modules (`modules.builtin.modinfo`: NUL-separated
/// `module.key=value` strings) -> (alias, module).
pub fn parse_builtin_aliases(bytes: &[u8]) -> Vec<(String, String)> {
    bytes
        .split(|b| *b == 0)
        .filter_map(|r| std::str::from_utf8(r).ok())
        .filter_map(|r| {
            let (module, kv) = r.split_once('.')?;
            let alias = kv.strip_prefix("alias=")?;
            (!alias.is_empty()).then(|| (norm(alias), norm(module)))
        })
        .collect()
}

/// What the kernel package says is built in.
struct Builtin {
    /// From `modules.builtin`; None when the package has no such file.
    names: Option<Vec<String>>,
    aliases: Vec<(String, String)>,
}

impl Builtin {
    fn read(moddir: &Path) -> Self {
        Self {
            names: fs::read_to_string(moddir.join("modules.builtin"))
                .ok()
                .map(|t| parse_builtin(&t)),
            aliases: fs::read(moddir.join("modules.builtin.modinfo"))
                .map(|b| parse_builtin_aliases(&b))
                .unwrap_or_default(),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.names
            .as_ref()
            .is_some_and(|n| n.iter().any(|b| b == name))
    }

    /// The built-in module providing alias `name`.
    fn providing(&self, name: &str) -> Option<&str> {
        self.aliases
            .iter()
            .find(|(a, _)| a == name)
            .map(|(_, m)| m.as_str())
    }
}

fn modinfo(field: &str, path: &Path) -> Result<String> {
    Ok(
        output(Command::new("modinfo").args(["-F", field]).arg(path))?
            .trim()
            .to_string(),
    )
}

/// Dependencies of a module: `depends=` (hard) plus `softdep pre:` entries resolved to a
/// module of this kernel (soft: one that resolves to nothing loadable is noted, not loaded).
fn module_deps(
    name: &str,
    path: &Path,
    index: &BTreeMap<String, PathBuf>,
    builtin: &Builtin,
    notes: &mut Vec<String>,
) -> Result<Vec<String>> {
    let mut deps: Vec<String> = modinfo("depends", path)?
        .split(',')
        .filter(|s| !s.is_empty())
        .map(norm)
        .collect();
    for line in modinfo("softdep", path)?.lines() {
        for d in parse_softdep_pre(line) {
            let d = norm(&d);
            // Soft dependencies name aliases ("crc32c"): take the module of that
            // name, or its generic implementation.
            let g = format!("{d}_generic");
            if index.contains_key(&d) {
                deps.push(d);
            } else if index.contains_key(&g) {
                deps.push(g);
            } else if let Some(m) = builtin.providing(&d) {
                notes.push(format!(
                    "{name}: softdep {d} is built in ({m}, modules.builtin.modinfo): nothing to load"
                ));
            } else if builtin.has(&d) {
                notes.push(format!(
                    "{name}: softdep {d} is built in (modules.builtin): nothing to load"
                ));
            } else {
                notes.push(format!(
                    "{name}: softdep {d} matches no module of this kernel: skipped"
                ));
            }
        }
    }
    Ok(deps)
}

/// The `pre:` names of a softdep line ("pre: crc32c post: foo").
pub fn parse_softdep_pre(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_pre = false;
    for t in line.split_whitespace() {
        match t {
            "pre:" => in_pre = true,
            "post:" => in_pre = false,
            _ if in_pre => out.push(t.to_string()),
            _ => {}
        }
    }
    out
}

/// (module file name without `.ko*`, path) in load order.
type LoadOrder = Vec<(String, PathBuf)>;

/// The wanted modules and their dependencies, dependencies first (file names as the package
/// spells them), and notes on what was skipped because it is built in.
fn module_order(moddir: &Path, wanted: &[&str]) -> Result<(LoadOrder, Vec<String>)> {
    let index = index_modules(moddir)?;
    let builtin = Builtin::read(moddir);
    struct Walk<'a> {
        index: &'a BTreeMap<String, PathBuf>,
        builtin: &'a Builtin,
        moddir: &'a Path,
        order: LoadOrder,
        notes: Vec<String>,
        stack: Vec<String>,
    }
    impl Walk<'_> {
        fn visit(&mut self, name: &str, needed_by: Option<&str>) -> Result<()> {
            if self.order.iter().any(|(n, _)| n == name) || self.stack.iter().any(|n| n == name) {
                return Ok(());
            }
            let Some(path) = self.index.get(name) else {
                let who = needed_by.map_or("wanted".to_string(), |w| format!("needed by {w}"));
                if self.builtin.has(name) {
                    self.notes.push(format!(
                        "{name} ({who}) is built into the kernel (modules.builtin): not loaded"
                    ));
                    return Ok(());
                }
                bail!(
                    "module {name} ({who}) is neither a .ko under {} nor in {}",
                    self.moddir.join("kernel").display(),
                    match &self.builtin.names {
                        Some(_) => "modules.builtin".to_string(),
                        None => format!(
                            "modules.builtin (the package has none: {})",
                            self.moddir.join("modules.builtin").display()
                        ),
                    }
                );
            };
            self.stack.push(name.to_string());
            let deps = module_deps(name, path, self.index, self.builtin, &mut self.notes)?;
            for d in deps {
                self.visit(&d, Some(name))?;
            }
            self.stack.pop();
            self.order.push((name.to_string(), path.clone()));
            Ok(())
        }
    }
    let mut w = Walk {
        index: &index,
        builtin: &builtin,
        moddir,
        order: Vec::new(),
        notes: Vec::new(),
        stack: Vec::new(),
    };
    for name in wanted {
        w.visit(&norm(name), None)?;
    }
    // Keep the file names the kernel package uses (hwpoison-inject, dm-mod).
    let order = w
        .order
        .into_iter()
        .map(|(_, p)| {
            let n = p.file_name().unwrap().to_string_lossy();
            let base = n.split(".ko").next().unwrap().to_string();
            (base, p)
        })
        .collect();
    Ok((order, w.notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines() {
        let t = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n";
        assert_eq!(
            parse_ldd(t),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn builtin_lists() {
        // Lines of 7.3.4's modules.builtin (linux-base-7.3.4+deb13-amd64).
        let b = parse_builtin(
            "kernel/lib/crc/crc32.ko\nkernel/drivers/dax/dax.ko\n\nkernel/fs/fat/fat.ko\n",
        );
        assert_eq!(b, ["crc32", "dax", "fat"]);
        let mi = b"crc32c_generic.alias=crypto-crc32c\0crc32c_generic.alias=crc32c\0crc32c_generic.license=GPL\0dm_mod.alias=devname:mapper/control\0junk\0";
        assert_eq!(
            parse_builtin_aliases(mi),
            [
                ("crypto_crc32c".to_string(), "crc32c_generic".to_string()),
                ("crc32c".to_string(), "crc32c_generic".to_string()),
                ("devname:mapper/control".to_string(), "dm_mod".to_string()),
            ]
        );
    }

    #[test]
    fn wanted_builtin_is_skipped_with_a_note() {
        let dir = std::env::temp_dir().join(format!("notify-xtask-mods-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("kernel")).unwrap();
        // No modules.builtin: nothing may be assumed built in.
        let e = module_order(&dir, &["dax"]).unwrap_err().to_string();
        assert!(
            e.contains("module dax (wanted) is neither a .ko") && e.contains("has none"),
            "{e}"
        );
        fs::write(dir.join("modules.builtin"), "kernel/drivers/dax/dax.ko\n").unwrap();
        let (order, notes) = module_order(&dir, &["dax"]).unwrap();
        assert!(order.is_empty());
        assert_eq!(
            notes,
            ["dax (wanted) is built into the kernel (modules.builtin): not loaded"]
        );
        let e = module_order(&dir, &["libcrc32c"]).unwrap_err().to_string();
        assert!(e.contains("libcrc32c (wanted) is neither"), "{e}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn softdep() {
        assert_eq!(parse_softdep_pre("pre: crc32c"), vec!["crc32c"]);
        assert_eq!(parse_softdep_pre("pre: a b post: c"), vec!["a", "b"]);
        assert!(parse_softdep_pre("post: c").is_empty());
    }
}
