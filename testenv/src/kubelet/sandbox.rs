//! A container's filesystem: a root directory per container, entered with `chroot` in a mount
//! namespace of its own (`unshare --mount`), holding what a container runtime gives a
//! container (`/proc`, the standard devices, `/tmp`, an `/etc` with the pod's `hosts`), the
//! host's `/usr` read-only (the binaries here are host builds; a dynamically linked one needs
//! its libraries), the pod's volumes at their `mountPath`s, and the program at
//! `/.pod/entrypoint`. The mounts vanish with the namespace; the directories stay under the
//! pod's directory.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::volumes::Mount;

/// The program's path inside the root.
pub const ENTRYPOINT: &str = "/.pod/entrypoint";

/// The host directories every root gets, read-only: a directory is bound, a symlink (as in
/// merged-`/usr` systems) copied.
const HOST_DIRS: [&str; 5] = ["/usr", "/lib", "/lib64", "/bin", "/sbin"];
/// Host files copied into the container's `/etc`.
const HOST_ETC_FILES: [&str; 4] = ["resolv.conf", "passwd", "group", "ld.so.cache"];

/// Prepares `dir/etc` (with `hosts` as given) and returns the shell script that builds the
/// root `dir/root` and runs `binary` there; its arguments follow the script.
pub fn script(dir: &Path, binary: &Path, hosts: &str, mounts: &[Mount]) -> Result<String> {
    let root = dir.join("root");
    let etc = dir.join("etc");
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&etc)?;
    for file in HOST_ETC_FILES {
        let host = Path::new("/etc").join(file);
        if host.is_file() {
            std::fs::copy(&host, etc.join(file))?;
        }
    }
    std::fs::write(etc.join("hosts"), hosts)?;
    std::fs::write(etc.join("nsswitch.conf"), "hosts: files dns\n")?;
    let mut s =
        String::from("set -e\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
    let r = quote(&root);
    writeln!(s, "cd {r}")?;
    writeln!(s, "mkdir -p proc dev tmp etc .pod")?;
    writeln!(s, "chmod 1777 tmp")?;
    writeln!(s, "mount -t proc proc proc")?;
    writeln!(
        s,
        "for d in null zero full random urandom tty; do touch dev/$d; mount --bind /dev/$d dev/$d; done"
    )?;
    writeln!(s, "mount --bind {} etc", quote(&etc))?;
    if Path::new("/etc/ssl").is_dir() {
        writeln!(s, "mkdir -p etc/ssl && mount --bind -o ro /etc/ssl etc/ssl")?;
    }
    for dir in HOST_DIRS {
        let host = Path::new(dir);
        let inside = &dir[1..];
        if let Ok(link) = std::fs::read_link(host) {
            writeln!(s, "[ -L {inside} ] || ln -s {} {inside}", quote(&link))?;
        } else if host.is_dir() {
            writeln!(s, "mkdir -p {inside} && mount --bind -o ro {dir} {inside}")?;
        }
    }
    writeln!(
        s,
        "touch .pod/entrypoint && mount --bind {} .pod/entrypoint",
        quote(binary)
    )?;
    for mount in mounts {
        let target = format!(".{}", mount.target);
        let t = quote(Path::new(&target));
        if mount.source.is_dir() {
            writeln!(s, "mkdir -p {t}")?;
        } else {
            writeln!(s, "mkdir -p \"$(dirname {t})\" && touch {t}")?;
        }
        writeln!(s, "mount --bind {} {t}", quote(&mount.source))?;
        if mount.read_only {
            writeln!(s, "mount -o remount,bind,ro {t}")?;
        }
    }
    writeln!(s, "cd / && exec chroot {r} {ENTRYPOINT} \"$@\"")?;
    Ok(s)
}

/// `path` in single quotes for `sh`.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_land_inside_the_root_and_read_only_ones_are_remounted() {
        let dir = std::env::temp_dir().join(format!("sandbox-test-{}", std::process::id()));
        let volume = dir.join("volumes").join("config");
        std::fs::create_dir_all(&volume).unwrap();
        let mounts = [Mount {
            source: volume.clone(),
            target: "/etc/adapter".into(),
            read_only: true,
        }];
        let script = script(
            &dir,
            Path::new("/bin/true"),
            "127.0.0.1 localhost\n",
            &mounts,
        )
        .unwrap();
        assert!(script.contains("mkdir -p './etc/adapter'"), "{script}");
        assert!(script.contains(&format!(
            "mount --bind '{}' './etc/adapter'",
            volume.display()
        )));
        assert!(script.contains("mount -o remount,bind,ro './etc/adapter'"));
        assert_eq!(
            std::fs::read_to_string(dir.join("etc/hosts")).unwrap(),
            "127.0.0.1 localhost\n"
        );
        assert_eq!(quote(Path::new("a'b")), r"'a'\''b'");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
